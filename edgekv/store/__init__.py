"""What the pure ``plan`` arithmetic reads, kept apart from it: the model catalog (``catalog``), plan
files (``planfile``), the user's speed samples (``speeds``), the GPU database (``cards``) and
calibration profiles (``profiles``). Each module owns one format: its reader and its writer.

Never imports llama_cpp, huggingface_hub, gguf or numpy (``edgekv pick`` reads the catalog).
"""

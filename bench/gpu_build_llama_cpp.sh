#!/usr/bin/env bash
# On the GPU machine, from the repo root, carry [".gpu"] (../shared/gpu/make-bundle.sh): build the llama.cpp
# vendored in llama-cpp-python's sdist ONCE for CUDA sm_90 with shared libs (the tools and the libs
# llama-cpp-python's Python package loads through LLAMA_CPP_LIB_PATH), and pack bin/ + lib*.so + the
# llama_cpp/ Python package into $OUT/llamacpp-cuda.tar.xz.partNN (14 MiB parts) for .gpucache/ (see its
# README for the unpack). What made /work/main/.gpucache on 2026-12-06 (#24): 229 s build, 44.8 MB packed.
set -uo pipefail
T0=$(date +%s)
export PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
B=/tmp/lcpp/build; SD=/tmp/lcpp-src/llama_cpp_python-0.3.36
mkdir -p /tmp/lcpp-src && tar xzf .gpu/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcpp-src
cmake -S $SD/vendor/llama.cpp -B $B -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=on -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
  -DLLAMA_USE_PREBUILT_UI=OFF -DGGML_NATIVE=OFF > /tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
cmake --build $B -j"$(nproc)" --target llama-bench llama-batched-bench llama-server llama mtmd >> /tmp/build.log 2>&1 \
  || { tail -40 /tmp/build.log; exit 1; }
echo "built in $(( $(date +%s) - T0 )) s"
cp -r $SD/llama_cpp $B/bin/llama_cpp && rm -rf $B/bin/llama_cpp/server $B/bin/llama_cpp/lib
(cd $B/bin && tar cf - llama-bench llama-batched-bench llama-server lib*.so* llama_cpp | xz -T0 -6 > /tmp/llamacpp-cuda.tar.xz)
split -b 14M -d /tmp/llamacpp-cuda.tar.xz "$OUT/llamacpp-cuda.tar.xz.part"
echo "packed at $(( $(date +%s) - T0 )) s"
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl
LD_LIBRARY_PATH=$B/bin LLAMA_CPP_LIB_PATH=$B/bin PYTHONPATH=$B/bin:/tmp/site:. \
  python3 -c 'import llama_cpp; print("llama_cpp", llama_cpp.__version__, "gpu offload:", llama_cpp.llama_supports_gpu_offload())'

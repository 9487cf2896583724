"""What each verb is asked: its flags as one typed request, and where a value comes from when a
flag is not given (the flag, else the calibration profile or the plan file, else the default).

One module per verb: ``pick`` (:class:`~edgekv.requests.pick.PickFlags` -> the library's
:class:`~edgekv.plan.requests.PickRequest`), ``run`` (:class:`~edgekv.requests.run.RunRequest`),
``eval`` (:class:`~edgekv.requests.eval.EvalRequest` -> ``EvalConfig``), ``sweep`` and ``bench``;
``card`` reads --gpu/--vram, ``overlay`` lays a verb's flags over a plan file (the one merge, used
by run and eval), ``flags`` parses the values several verbs share. A command builds the request
from its named parameters, resolves it here, calls the library and hands the result to ``report``.

A value that cannot be parsed is :class:`edgekv.errors.BadArgument` (exit 2); flags that cannot go
together are click's ``UsageError`` (exit 2, with the usage line), as the commands raised them.
"""

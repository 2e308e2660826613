"""Run llama.cpp's OpenAI-compatible server (llama-cpp-python) with weight repacking off.

The stand-in for `vllm --model gpt2` in the demo and the local-model tests.
Arguments are those of `python -m llama_cpp.server`.

Why not run that module directly: on CPUs with AMX (these machines report
AMX_INT8), llama.cpp's "extra buffer types" repack the weights for AMX and
then any prompt of more than one token never finishes evaluating (seen with
llama-cpp-python 0.3.36: the server answers 200 and sends nothing). Turning
`use_extra_bufts` off makes it answer normally, at ~30 tokens/s for
SmolLM2-135M on 2 cores. The server has no flag for it, so it is set here,
in the model defaults, before the server loads the model.
"""

from __future__ import annotations

import sys

import llama_cpp.llama_cpp as native

_defaults = native.llama_model_default_params


def _without_repacking():
    params = _defaults()
    params.use_extra_bufts = False
    return params


native.llama_model_default_params = _without_repacking

if __name__ == "__main__":
    from llama_cpp.server.__main__ import main

    sys.argv[0] = "llama_cpp.server"
    sys.exit(main())

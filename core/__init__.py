"""CKA Lens's pure computation: CKA, data, features, probes and the analysis pipeline (no UI).

Importing torchvision imports torch._dynamo, which imports triton where it is installed (it comes with torch's CUDA
wheels, the default ones on Linux): ~100 MiB of resident memory that a process without a GPU never uses, since no
analysis compiles anything. Without a GPU, triton is kept out of the process (importing it raises ImportError,
which torch takes as "not installed").
"""

import sys

import torch

if "triton" not in sys.modules and not torch.cuda.is_available():
    sys.modules["triton"] = None

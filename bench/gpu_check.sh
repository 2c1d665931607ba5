#!/usr/bin/env bash
# The GPU proof of issue 14, in one run that installs nothing: on a machine whose python3
# has torch (CUDA), transformers, peft and accelerate — no Django, no database — it runs
#   1. bench/training_speed.py on random weights in SmolLM2-135M's shape: our generation
#      and PPO update against bare transformers/torch on the same GPU (goals: >= 0.9x, <= 1.5x);
#   2. bench/gpu_rounds.py: three simulated rounds (generate -> reward model -> PPO), timed.
# Ends well inside 10 minutes on one GPU (each step has its own time limit).
#
#   bash bench/gpu_check.sh              # on the GPU machine (RLHF_DEVICE=cuda: no CPU fallback)
#   bash bench/gpu_check.sh --quick      # tiny models on the CPU: proves the script itself works
# PYTHON=... picks the interpreter (default python3); DEVICE=... overrides the device.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
QUICK=""
DEVICE="${DEVICE:-cuda}"
if [ "${1:-}" = "--quick" ]; then
    QUICK="--quick"
    DEVICE="${DEVICE_QUICK:-cpu}"
fi
export PYTHONWARNINGS="ignore::FutureWarning,ignore::UserWarning"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== environment"
"$PYTHON" - <<'PY'
import platform, torch, transformers, peft
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, peft {peft.__version__}")
if torch.cuda.is_available():
    print("GPU:", torch.cuda.get_device_name(0), f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB,",
          "bf16" if torch.cuda.is_bf16_supported() else "no bf16")
else:
    print("no CUDA device visible")
PY

echo "== 1. training speed: ours against bare transformers/torch (device $DEVICE)"
if [ -n "$QUICK" ]; then
    TINY="$(mktemp -d)/tiny-policy"
    "$PYTHON" -c "import sys; from training.tiny import build_tiny_policy; build_tiny_policy(sys.argv[1], \
'Explain why the sky is blue in simple terms write a haiku about cat'.split())" "$TINY" >/dev/null
    timeout 120 "$PYTHON" bench/training_speed.py --device "$DEVICE" --model "$TINY" --repeats 2 --max-new-tokens 8
else
    timeout 240 "$PYTHON" bench/training_speed.py --device "$DEVICE" --random-smollm2 --repeats 3 --batch 64
    timeout 120 "$PYTHON" bench/training_speed.py --device "$DEVICE" --random-smollm2 --repeats 3 --batch 16 \
        --dtype fp32 2>&1 | grep -v '^torch '
fi

echo "== 2. three simulated rounds without Django (device $DEVICE)"
timeout 300 "$PYTHON" bench/gpu_rounds.py --device "$DEVICE" --rounds 3 $QUICK
echo "== done"

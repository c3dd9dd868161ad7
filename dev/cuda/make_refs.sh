#!/usr/bin/env bash
# PyTorch references for test_gpt_cu, written to build/cuda_refs/ (small files, so a GPU
# machine without PyTorch can take them along):
#   awkward: the odd config of dev/test/test_reference.sh (C=72, NH=3: head size 24)
#   hs64:    head size 64, T=100 (several attention tiles), B=4 (gradient accumulation)
#   hs128:   head size 128
# and, at the awkward config, fine-tuning: a masked (weighted) loss, then the four PEFT methods
# on a frozen base (each also writes PREFIX_peft_init.peft, the adapter both models start from):
#   masked:       full fine-tuning, per-target loss weights
#   peft_lora:    LoRA on all four matrices (rank 3), weighted loss
#   peft_lora_qf: LoRA on qkv and fc only, rank 2 (fc's GELU-fusion fallback, unaligned rank)
#   peft_bitfit:  BitFit with the LayerNorm gains, weighted loss
#   peft_adapter: Houlsby adapters (bottleneck 5), weighted loss
#   peft_prompt:  a soft prompt of 5 positions before T=11 (5 + 11 = maxT), weighted loss
#   dpo:          DPO (sigmoid, label smoothing 0.1) on 2 pairs, full fine-tuning
#   dpo_lora:     the hinge variant with LoRA on qkv,fc (the variants differ only in llmc/dpo.h's
#                 host code, which test_gpt checks for each; IPO's square amplifies bf16's
#                 log-prob error, 1.1e-2 of the 2e-2 step-loss bound, so it is left to the CPU)
#   distill:      distillation from the oracle's teacher (reverse KL, loss weights)
# B=4 for the fine-tuning ones: test_gpt_cu checks gradient accumulation at even B only.
# A fresh seed every run (printed; SEED=... reproduces one), as test_reference.sh does for the CPU.
set -eu
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-$(test -x .venv/bin/python && echo .venv/bin/python || echo python3)}
SEED=${SEED:-$(( ($(date +%s) ^ $$ ^ RANDOM) % 1000000 ))}
echo "reference seed: $SEED (rerun with SEED=$SEED bash dev/cuda/make_refs.sh)"
mkdir -p build/cuda_refs
# AdamW's eps at 1e-5, as dev/test/test_reference.sh says why: at 1e-8 an entry whose gradient
# lies within ~eps of 0 turns fp32 rounding into up to a whole step of difference
ADAMW="--eps 1e-5"
$PYTHON dev/reference/gpt2_reference.py --out build/cuda_refs/awkward --seed "$SEED" $ADAMW \
    --L 2 --C 72 --NH 3 --V 997 --maxT 16 --B 3 --T 13
$PYTHON dev/reference/gpt2_reference.py --out build/cuda_refs/hs64 --seed "$((SEED + 1))" $ADAMW \
    --L 2 --C 128 --NH 2 --V 997 --maxT 128 --B 4 --T 100
$PYTHON dev/reference/gpt2_reference.py --out build/cuda_refs/hs128 --seed "$((SEED + 2))" $ADAMW \
    --L 1 --C 256 --NH 2 --V 509 --maxT 80 --B 2 --T 70
AWK="--L 2 --C 72 --NH 3 --V 997 --maxT 16 --B 4"
n=3
reference() {  # NAME FLAGS...
    local name=$1
    shift
    n=$((n + 1))
    $PYTHON dev/reference/gpt2_reference.py --out "build/cuda_refs/$name" --seed "$((SEED + n))" $ADAMW "$@"
}
reference masked $AWK --T 13 --weights
reference peft_lora $AWK --T 13 --peft lora --lora-targets all --weights
reference peft_lora_qf $AWK --T 13 --peft lora --lora-targets qkv,fc --lora-rank 2
reference peft_bitfit $AWK --T 13 --peft bitfit --bitfit-ln --weights
reference peft_adapter $AWK --T 13 --peft adapter --weights
reference peft_prompt $AWK --T 11 --peft prompt --prompt-len 5 --weights  # k + T = 16 = maxT
reference dpo $AWK --T 13 --dpo sigmoid --dpo-beta 0.5 --dpo-label-smoothing 0.1
reference dpo_lora $AWK --T 13 --dpo hinge --dpo-beta 0.3 --peft lora --lora-targets qkv,fc --lora-rank 2
reference distill $AWK --T 13 --distill --distill-reverse --weights
ls -la build/cuda_refs

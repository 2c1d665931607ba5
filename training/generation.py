"""Batched sampling from a policy: chat template, left padding, EOS truncation.

Sampling draws from a `torch.Generator` of its own, never from torch's global one:
generation is reached from threaded web requests, and two requests seeding and drawing
from the one global generator at once would each get the other's randomness.
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from training import device as placement
from training.config import GenerationConfig
from training.models import load_policy
from training.progress import NO_HOOKS, Hooks

Messages = list[dict]


def as_messages(prompt: str | Messages) -> Messages:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return prompt


def render_prompt(tokenizer, prompt: str | Messages) -> str:
    """The text the policy sees for a prompt: its chat template with the assistant turn opened."""
    messages = as_messages(prompt)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nassistant:"


def encode_prompts(tokenizer, prompts: list, device=None) -> dict:
    """Left-padded queries, so every response starts at the same column; on `device` (default: the configured one)."""
    texts = [render_prompt(tokenizer, p) for p in prompts]
    tokenizer.padding_side = "left"
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return {k: v.to(device if device is not None else placement.device()) for k, v in enc.items()}


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    # With left padding the first real token must get position 0, as it did in generate().
    return (attention_mask.cumsum(-1) - 1).clamp(min=0)


def decoder_states_and_logits(model, input_ids, attention_mask, logits_to_keep: int):
    """The causal LM's last hidden states (every position) and fp32 logits of its last `logits_to_keep` positions.

    The LM head runs here, not inside the model: transformers applies it to a strided
    slice of the hidden states, and a strided 3-D input sends the 49k-way projection
    through a batched matmul that copies its weight once per row (on the CPU in bf16, a
    fifth of a PPO update's time). The head computes in fp32 under any dtype: logprob
    ratios and KLs are small differences of large logits, which bf16's 8-bit mantissa
    would round (a logit of 20 to the nearest 0.125).
    """
    with placement.autocast():
        hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask,
                                     position_ids=position_ids_from_mask(attention_mask), use_cache=False,
                                     ).last_hidden_state
    head = model.get_output_embeddings()
    kept = hidden[:, -logits_to_keep:].contiguous().float()
    bias = None if head.bias is None else head.bias.float()
    return hidden, torch.nn.functional.linear(kept, _fp32_weight(head), bias)


def _fp32_weight(head) -> torch.Tensor:
    """The head's weight in fp32; a frozen low-precision weight is converted once and kept on
    the module (a bf16 SmolLM2 head is 57 MB, converted on every forward pass otherwise)."""
    weight = head.weight
    if weight.dtype == torch.float32 or weight.requires_grad:
        return weight.float()  # itself, or a copy that gradients flow through
    key = (weight.data_ptr(), weight._version, weight.device)
    cached = head.__dict__.get("_fp32_weight")
    if cached is None or cached[0] != key:
        cached = (key, weight.float())
        head.__dict__["_fp32_weight"] = cached
    return cached[1]


def response_logits(model, batch: dict, temperature: float = 1.0) -> torch.Tensor:
    """Logits at `temperature` of the positions that predict the response tokens, (rows, width, vocab).

    `batch` is laid out as `sample` returns it: {"query", "query_mask"} left-padded, then
    {"responses", "response_mask"} right-padded. Only those positions go through the LM head
    (its 49k-way projection dominates the cost of a small policy).
    """
    input_ids = torch.cat([batch["query"], batch["responses"]], dim=1)
    attention_mask = torch.cat([batch["query_mask"], batch["response_mask"]], dim=1)
    width = batch["responses"].shape[1]
    _, logits = decoder_states_and_logits(model, input_ids, attention_mask, width + 1)
    return logits[:, :-1] / temperature


def truncate_after_eos(responses: torch.Tensor, eos_token_id: int, pad_token_id: int):
    """Replace everything after the first EOS with padding.

    Returns (responses, mask, ended): mask is 1 on real response tokens (EOS included),
    ended says whether the response emitted EOS at all.
    """
    is_eos = responses == eos_token_id
    ended = is_eos.any(dim=1)
    # index of the first EOS, or the full length when there is none
    first = torch.where(ended, is_eos.int().argmax(dim=1), torch.full_like(ended, responses.shape[1], dtype=torch.long))
    cols = torch.arange(responses.shape[1], device=responses.device).unsqueeze(0)
    mask = (cols <= first.unsqueeze(1)).long()
    responses = torch.where(mask.bool(), responses, torch.full_like(responses, pad_token_id))
    return responses, mask, ended


def eos_id(tokenizer) -> int:
    if tokenizer.eos_token_id is None:
        raise ValueError("the policy tokenizer has no EOS token")
    return tokenizer.eos_token_id


class _SampleWithGenerator:
    """A logits processor that samples the next token with its own `torch.Generator`.

    transformers' `generate` samples with the global generator and takes no other, so
    generation runs greedy and this processor, last in line, draws the token from
    softmax(logits / temperature) after top-p, then leaves it the only finite score:
    the same distribution as `do_sample=True`, with randomness that belongs to the call.
    """

    def __init__(self, generator: torch.Generator, temperature: float, top_p: float):
        self.generator = generator
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float() / self.temperature
        if self.top_p < 1.0:
            from transformers.generation.logits_process import TopPLogitsWarper

            scores = TopPLogitsWarper(top_p=self.top_p)(input_ids, scores)
        chosen = draw(torch.softmax(scores, dim=-1), self.generator)
        picked = torch.full_like(scores, float("-inf"))
        return picked.scatter_(1, chosen, 0.0)


def draw(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One token per row of `probs` (rows, vocab), drawn with `generator`; (rows, 1).

    Inverse-CDF sampling: the first token whose cumulative probability passes a uniform
    draw scaled to the row's total (so rounding in the sum never runs past the end, and
    a token of probability 0 is never the first to pass). The same distribution as
    `torch.multinomial`, which on the CPU draws an exponential per vocabulary entry:
    15 ms a step for 16 rows of 49k tokens, 0.4 ms this way.
    """
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device, dtype=cdf.dtype)
    return torch.searchsorted(cdf, u * cdf[..., -1:], right=True).clamp_(max=probs.shape[-1] - 1)


def make_generator(seed: int | None, device="cpu") -> torch.Generator:
    """A generator of our own: seeded for reproducible samples, else from the OS's entropy."""
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


@torch.no_grad()
def sample(model, tokenizer, prompts: list, *, max_new_tokens: int, temperature: float, top_p: float = 1.0,
           generator: torch.Generator | None = None):
    """Sample one response per prompt; returns (query_ids, query_mask, response_ids, response_mask, ended).

    Without `generator`, one is seeded from torch's global generator, so a caller that
    seeds torch once (PPO in the worker) stays reproducible.
    """
    from transformers import LogitsProcessorList

    enc = encode_prompts(tokenizer, prompts, device=next(model.parameters()).device)
    if generator is None:
        generator = make_generator(int(torch.randint(0, 2**62, (1,)).item()), device=enc["input_ids"].device)
    with placement.autocast():
        out = model.generate(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            do_sample=False,  # the processor below samples
            logits_processor=LogitsProcessorList([_SampleWithGenerator(generator, temperature, top_p)]),
            temperature=None,
            top_p=None,
            top_k=None,
            max_new_tokens=max_new_tokens,
            min_new_tokens=1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos_id(tokenizer),
        )
    responses = out[:, enc["input_ids"].shape[1]:]
    responses, mask, ended = truncate_after_eos(responses, eos_id(tokenizer), tokenizer.pad_token_id)
    return enc["input_ids"], enc["attention_mask"], responses, mask, ended


@dataclass
class GeneratedSample:
    """One response as stored by the app."""

    text: str
    token_count: int
    finished: bool


def decode_responses(tokenizer, responses: torch.Tensor, mask: torch.Tensor) -> list[str]:
    texts = []
    for row, row_mask in zip(responses, mask):
        ids = row[row_mask.bool()].tolist()
        texts.append(tokenizer.decode(ids, skip_special_tokens=True).strip())
    return texts


def generate_responses(
    model_path: str | Path,
    prompts: list,
    config: GenerationConfig | None = None,
    hooks: Hooks = NO_HOOKS,
    *,
    model_and_tokenizer=None,
) -> list[GeneratedSample]:
    """Sample one response for each prompt with the checkpoint at `model_path`."""
    config = (config or GenerationConfig()).validate()
    model, tokenizer = model_and_tokenizer or load_policy(model_path)
    generator = make_generator(config.seed, device=model.device)
    results: list[GeneratedSample] = []
    total = len(prompts)
    hooks.progress("generating", 0, total)
    for start in range(0, total, config.batch_size):
        hooks.check()
        batch = prompts[start:start + config.batch_size]
        _, _, responses, mask, ended = sample(
            model, tokenizer, batch,
            max_new_tokens=config.max_new_tokens, temperature=config.temperature, top_p=config.top_p,
            generator=generator,
        )
        texts = decode_responses(tokenizer, responses, mask)
        for text, row_mask, end in zip(texts, mask, ended):
            results.append(GeneratedSample(text=text, token_count=int(row_mask.sum()), finished=bool(end)))
        hooks.progress("generating", len(results), total)
    return results


@dataclass
class StreamChunk:
    """A piece of a response being generated; the last one has `done` set and the totals."""

    text: str
    done: bool = False
    full_text: str = ""
    """On the last chunk: the whole response, stripped as generate_responses() strips it."""
    token_count: int = 0
    finished: bool = False
    """The response ended by itself: EOS, or one of its stop sequences."""
    index: int = 0
    """Which request of the batch this piece belongs to."""
    finish_reason: str = ""
    """On the last chunk: "stop" (EOS or a stop sequence), "length" (max_new_tokens) or "cancelled"."""


@dataclass
class GenerationRequest:
    """One response to draw: its prompt and its own sampling settings (rows of one batch may differ)."""

    prompt: str | Messages
    max_new_tokens: int
    temperature: float = 1.0
    """0 means greedy (argmax)."""
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    """The response ends before the first of these strings; the string itself is not returned."""


def _top_p_filter(logits: torch.Tensor, top_p) -> torch.Tensor:
    """Mask everything outside the smallest set of tokens whose probability reaches `top_p`.

    `top_p` is a float, or a tensor with one value per row of `logits`.
    """
    if not torch.is_tensor(top_p):
        if top_p >= 1.0:
            return logits
        top_p = torch.tensor(top_p)
    elif bool((top_p >= 1.0).all()):
        return logits
    top_p = top_p.to(logits.dtype).unsqueeze(-1) if top_p.dim() else top_p
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = sorted_logits.softmax(-1)
    # keep a token while the mass before it is below top_p, so the top token always stays
    drop = (probs.cumsum(-1) - probs) >= top_p
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)


def _stop_holdback(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could still grow into a stop sequence.

    A streamed piece must not show the start of a stop string that the next token completes.
    """
    held = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:k]):
                held = k
                break
    return held


class _Row:
    """The state of one response while its batch is decoded."""

    def __init__(self, request: GenerationRequest, device):
        self.request = request
        self.generator = torch.Generator(device=device)
        if request.seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(request.seed)
        self.tokens: list[int] = []
        self.sent = ""
        self.text = ""
        self.done = False
        self.reason = ""

    def visible(self, tokenizer) -> str:
        """The response so far, cut at a stop sequence (which then ends the row)."""
        text = tokenizer.decode(self.tokens, skip_special_tokens=True)
        for stop in self.request.stop:
            at = text.find(stop)
            if at != -1:
                text = text[:at]
                self.done, self.reason = True, "stop"
        return text


@torch.no_grad()
def stream_batch(model, tokenizer, requests: list[GenerationRequest], *, should_stop=None):
    """Draw one response per request, all in one batch, yielding StreamChunks as tokens arrive.

    Own token loop rather than `generate()` + `TextIteratorStreamer`: `generate()` samples
    from torch's global RNG, so a seed would have to be set process-wide, which a web
    thread must not do (two requests would reseed each other). Here each row draws from
    its own `torch.Generator`, so a seeded request gives the same text whatever it is
    batched with. Same sampling as `sample()`: temperature, nucleus `top_p`, no top-k, at
    least one token before EOS. Pieces are decoded from the whole response each time, so a
    character split over several tokens arrives whole; text that may be the start of a
    stop sequence is held back until it is known not to be one.

    Each request's last chunk has `done` set; `should_stop()` returning true ends every
    row with finish_reason "cancelled".
    """
    if not requests:
        return
    device = next(model.parameters()).device
    eos = eos_id(tokenizer)
    rows = [_Row(r, "cpu") for r in requests]
    enc = encode_prompts(tokenizer, [r.prompt for r in requests], device=device)
    input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
    temperature = torch.tensor([r.temperature for r in requests], dtype=torch.float32)
    greedy = temperature <= 0
    temperature = torch.where(greedy, torch.ones_like(temperature), temperature).unsqueeze(1)
    top_p = torch.tensor([r.top_p for r in requests], dtype=torch.float32)
    past = None
    step_input = input_ids
    for step in range(max(r.max_new_tokens for r in requests)):
        if should_stop is not None and should_stop():
            for i, row in enumerate(rows):
                if not row.done:
                    row.done, row.reason = True, "cancelled"
                    yield _final(row, i, tokenizer)
            return
        positions = position_ids_from_mask(attention_mask)[:, -step_input.shape[1]:]
        with placement.autocast():
            out = model(input_ids=step_input, attention_mask=attention_mask, position_ids=positions,
                        cache=past, use_cache=True, logits_to_keep=1)
        past = out.cache
        logits = out.logits[:, -1].float().cpu() / temperature
        if step == 0:
            logits[:, eos] = float("-inf")  # min_new_tokens=1, as in sample()
        probs = _top_p_filter(logits, top_p).softmax(-1)
        next_tokens = []
        for i, row in enumerate(rows):
            if row.done:
                next_tokens.append(tokenizer.pad_token_id)
                continue
            if greedy[i]:
                token = int(logits[i].argmax())
            else:
                token = int(draw(probs[i], row.generator))
            next_tokens.append(token)
            if token == eos:
                row.done, row.reason = True, "stop"
            else:
                row.tokens.append(token)
                row.text = row.visible(tokenizer)
                if not row.done and len(row.tokens) >= row.request.max_new_tokens:
                    row.done, row.reason = True, "length"
            if row.done:
                yield _final(row, i, tokenizer, eos_counted=token == eos)
                continue
            shown = row.text[:len(row.text) - _stop_holdback(row.text, row.request.stop)]
            if shown.startswith(row.sent) and not shown.endswith("\ufffd") and len(shown) > len(row.sent):
                yield StreamChunk(text=shown[len(row.sent):], index=i)
                row.sent = shown
        if all(row.done for row in rows):
            return
        step_input = torch.tensor(next_tokens, device=device).unsqueeze(1)
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)


def _final(row: _Row, index: int, tokenizer, *, eos_counted: bool = False) -> StreamChunk:
    text = row.text if row.reason == "stop" and row.request.stop else tokenizer.decode(row.tokens, skip_special_tokens=True)
    rest = text[len(row.sent):] if text.startswith(row.sent) else ""
    return StreamChunk(text=rest, done=True, full_text=text.strip(), token_count=len(row.tokens) + int(eos_counted),
                       finished=row.reason == "stop", index=index, finish_reason=row.reason)


def stream_response(
    model, tokenizer, prompt: str | Messages, *, max_new_tokens: int, temperature: float,
    top_p: float = 1.0, seed: int | None = None, should_stop=None, stop: tuple[str, ...] = (),
):
    """Yield one sampled response to `prompt` piece by piece (stream_batch with one request)."""
    request = GenerationRequest(prompt=prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                                top_p=top_p, seed=seed, stop=tuple(stop))
    yield from stream_batch(model, tokenizer, [request], should_stop=should_stop)


def complete_batch(model, tokenizer, requests: list[GenerationRequest]) -> list[StreamChunk]:
    """The final chunk (full text, token count, finish reason) of every request, in order."""
    results: list[StreamChunk | None] = [None] * len(requests)
    for chunk in stream_batch(model, tokenizer, requests):
        if chunk.done:
            results[chunk.index] = chunk
    return results

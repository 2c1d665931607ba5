"""The PPO and reward-model numerics against hand-computed values (no Django needed)."""
import math

import pytest
import torch

from training.generation import truncate_after_eos
from training.ppo import compute_gae, masked_mean, masked_whiten, policy_loss, sequence_kl, value_loss
from training.reward import bradley_terry_loss


def test_bradley_terry_loss_matches_hand_computation():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    expected = (-math.log(1 / (1 + math.exp(-1.0))) - math.log(1 / (1 + math.exp(1.0)))) / 2
    assert bradley_terry_loss(rc, rr).item() == pytest.approx(expected, rel=1e-6)


def test_margin_and_centering_raise_the_loss_as_specified():
    rc, rr = torch.tensor([2.0]), torch.tensor([1.0])
    with_margin = bradley_terry_loss(rc, rr, margin=torch.tensor([0.5]))
    assert with_margin.item() == pytest.approx(-math.log(1 / (1 + math.exp(-0.5))), rel=1e-6)
    centred = bradley_terry_loss(rc, rr, center_coefficient=0.1)
    assert centred.item() == pytest.approx(-math.log(1 / (1 + math.exp(-1.0))) + 0.1 * 9.0, rel=1e-6)


def _gae_reference(rewards, values, gamma, lam):
    """GAE written out for one unpadded sequence, as in the paper's notation."""
    T = len(rewards)
    adv = [0.0] * T
    last = 0.0
    for t in reversed(range(T)):
        next_v = values[t + 1] if t + 1 < T else 0.0
        delta = rewards[t] + gamma * next_v - values[t]
        last = delta + gamma * lam * last
        adv[t] = last
    return adv


def test_gae_matches_reference_and_ignores_padding():
    rewards = torch.tensor([[0.1, -0.2, 1.0, 5.0], [0.0, 0.5, 0.0, 0.0]])
    values = torch.tensor([[0.3, 0.2, 0.1, 9.0], [0.1, -0.1, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.float)
    adv, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=0.95)
    ref0 = _gae_reference([0.1, -0.2, 1.0], [0.3, 0.2, 0.1], 1.0, 0.95)
    ref1 = _gae_reference([0.0, 0.5], [0.1, -0.1], 1.0, 0.95)
    assert adv[0, :3].tolist() == pytest.approx(ref0, abs=1e-6)
    assert adv[1, :2].tolist() == pytest.approx(ref1, abs=1e-6)
    assert adv[0, 3] == 0 and adv[1, 2:].abs().sum() == 0  # padding carries nothing
    assert ret[0, :3].tolist() == pytest.approx([a + v for a, v in zip(ref0, [0.3, 0.2, 0.1])], abs=1e-6)


def test_policy_loss_clips_large_ratios():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 0.5]]))  # ratios 1.5 and 0.5
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    loss, clipfrac, approx_kl = policy_loss(new, old, adv, mask, cliprange=0.2)
    # token 1: max(-1.5, -1.2) = -1.2 (clipped); token 2: max(0.5, 0.8) = 0.8 (clipped)
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2, rel=1e-6)
    assert clipfrac.item() == 1.0
    assert approx_kl.item() == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 2, rel=1e-5)


def test_value_loss_uses_the_worse_of_clipped_and_unclipped():
    loss, clipfrac = value_loss(torch.tensor([[1.0]]), torch.tensor([[0.0]]), torch.tensor([[1.0]]), torch.ones(1, 1), 0.2)
    # clipped prediction 0.2 is further from the return 1.0: 0.5 * 0.8^2
    assert loss.item() == pytest.approx(0.5 * 0.64)
    assert clipfrac.item() == 1.0


def test_masked_statistics_ignore_padding():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert masked_mean(x, mask).item() == 2.0
    white = masked_whiten(x, mask)
    assert white[0, 2] == 0
    assert masked_mean(white, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_truncate_after_eos_pads_the_rest_and_flags_missing_eos():
    eos, pad = 9, 0
    responses = torch.tensor([[5, 9, 7, 7], [5, 6, 7, 8]])
    out, mask, ended = truncate_after_eos(responses, eos, pad)
    assert out.tolist() == [[5, 9, 0, 0], [5, 6, 7, 8]]
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert ended.tolist() == [True, False]


def test_agreement_weights_pairs():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 1.0])
    l1 = -math.log(1 / (1 + math.exp(-1.0)))
    l2 = -math.log(1 / (1 + math.exp(1.0)))
    weighted = bradley_terry_loss(rc, rr, weight=torch.tensor([1.0, 1 / 3]))
    assert weighted.item() == pytest.approx((l1 + l2 / 3) / (4 / 3), rel=1e-6)


def test_response_logprobs_match_a_full_forward(tiny_models):
    """Only response positions go through the LM head; the logprobs must equal a full pass's."""
    from training.generation import encode_prompts
    from training.models import load_policy
    from training.ppo import PolicyAndValue, _forward, logprobs_of

    model, tokenizer = load_policy(tiny_models["policy"])
    module = PolicyAndValue(model, model.config.hidden_size)
    enc = encode_prompts(tokenizer, ["a short one", "a somewhat longer prompt than that"])
    responses = torch.randint(3, model.config.vocab_size, (2, 5))
    response_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        logprobs, values, _ = _forward(module, enc["input_ids"], enc["attention_mask"], responses, response_mask, 0.7)
        full_logits, full_values = module(torch.cat([enc["input_ids"], responses], 1),
                                          torch.cat([enc["attention_mask"], response_mask], 1))
    context = enc["input_ids"].shape[1]
    expected = logprobs_of(full_logits[:, context - 1:-1] / 0.7, responses)
    assert logprobs.shape == (2, 5) and values.shape == (2, 5)
    torch.testing.assert_close(logprobs, expected)
    torch.testing.assert_close(values, full_values[:, context - 1:-1])


def test_sequence_kl_is_the_full_distribution_kl_summed_over_the_answer():
    torch.manual_seed(0)
    logits, ref = torch.randn(2, 3, 5), torch.randn(2, 3, 5)
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    expected = []
    for b in range(2):
        total = 0.0
        for t in range(3):
            if mask[b, t]:
                p, q = torch.softmax(logits[b, t], -1), torch.softmax(ref[b, t], -1)
                total += sum(float(p[v]) * math.log(float(p[v]) / float(q[v])) for v in range(5))
        expected.append(total)
    got = sequence_kl(logits, ref, mask)
    assert got.tolist() == pytest.approx(expected, rel=1e-5)
    assert (got > 0).all() and sequence_kl(logits, logits, mask).abs().max() < 1e-6  # zero only for the same policy


def test_token_draws_follow_the_distribution_and_never_pick_an_impossible_token():
    """generation.draw (inverse CDF) against the probabilities it is given, with its own generator."""
    from training.generation import draw, make_generator

    probs = torch.tensor([[0.0, 0.2, 0.0, 0.5, 0.3, 0.0]]).repeat(50_000, 1)
    picks = draw(probs, make_generator(0)).squeeze(1)
    counts = torch.bincount(picks, minlength=6).float() / len(picks)
    assert counts[[0, 2, 5]].sum() == 0  # probability 0: never, not even the last token
    torch.testing.assert_close(counts, probs[0], atol=0.01, rtol=0)
    # unnormalised rows (top-p masks, rounding) are scaled by their own total
    assert set(draw(torch.tensor([[0.0, 3.0, 1.0]] * 200), make_generator(1)).flatten().tolist()) == {1, 2}
    # the same seed draws the same tokens; one row without a batch dimension works too
    assert torch.equal(draw(probs[:100], make_generator(7)), draw(probs[:100], make_generator(7)))
    assert draw(probs[0], make_generator(0)).shape == (1,)

"""A round's reward model trains on the new pairs plus a replay sample of the old, evaluated on all."""
import pytest

from tests.helpers import toy_preferences
from training.config import ConfigError, RewardConfig
from training.reward import select_training_records, train_reward_model


def _old_and_new(old: int, new: int) -> list[dict]:
    records = toy_preferences(old + new, seed=3)
    for i, record in enumerate(records):
        record["id"] = i
        record["new"] = i >= old
    return records


def test_new_pairs_plus_a_seeded_replay_sample_of_the_old():
    records = _old_and_new(1000, 50)
    selected, counts = select_training_records(records, replay_pairs=100, seed=7)
    assert len(selected) == 150 and counts == {"new_pairs": 50, "old_pairs": 1000, "replayed_pairs": 100}
    assert {r["id"] for r in selected if r["new"]} == set(range(1000, 1050))  # every new pair
    again, _ = select_training_records(records, replay_pairs=100, seed=7)
    assert [r["id"] for r in again] == [r["id"] for r in selected]  # the same sample for the same seed
    other, _ = select_training_records(records, replay_pairs=100, seed=8)
    assert {r["id"] for r in other} != {r["id"] for r in selected}


def test_zero_replays_every_old_pair_and_unmarked_records_all_count_as_new():
    records = _old_and_new(1000, 50)
    assert len(select_training_records(records, replay_pairs=0, seed=0)[0]) == 1050
    assert len(select_training_records(records, replay_pairs=5000, seed=0)[0]) == 1050
    unmarked = [{k: v for k, v in r.items() if k != "new"} for r in records[:30]]
    assert select_training_records(unmarked, replay_pairs=1, seed=0)[1]["new_pairs"] == 30


def test_training_uses_the_selection_and_evaluates_on_pairs_from_all_votes(tiny_models, tmp_path):
    records = _old_and_new(1000, 50)
    config = RewardConfig(epochs=1, min_steps=0, batch_size=64, eval_fraction=0.2, replay_pairs=100)
    result = train_reward_model(records, tiny_models["reward"], tmp_path / "rm", config)
    summary = result["summary"]
    assert summary["eval_pairs"] == 210  # 20 % of all 1050, old and new
    new_in_train = summary["new_pairs"]
    assert 0 < new_in_train < 50  # some new pairs were held out with the old
    assert summary["old_pairs"] + new_in_train == 840 and summary["replayed_pairs"] == 100
    assert summary["train_pairs"] == new_in_train + 100
    assert len(result["steps"]) == -(-summary["train_pairs"] // 64)  # one epoch over the selection only


def test_replay_pairs_is_validated_naming_the_field():
    with pytest.raises(ConfigError, match="replay_pairs"):
        RewardConfig(replay_pairs=-1).validate()

"""The launch form's help texts: each setting's docstring, read from the config class."""
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from training.config import PPOConfig, _parse_field_help, field_help


def test_field_help_reads_each_settings_docstring():
    help_texts = field_help(PPOConfig)
    assert help_texts["missing_eos_penalty"].startswith("Subtracted from the score of a response that never emitted EOS")
    assert "\n" not in help_texts["kl_target"] and "gamma" in help_texts


def test_field_help_parses_a_class_once_whatever_the_threads():
    # the threaded web server asks from many threads at once; Python 3.11's ast.parse is not
    # safe to run concurrently (a 500 on the launch page in CI), so one parse, then the cache
    @dataclass
    class Fresh:
        steps: int = 3
        """How many   steps."""
        plain: int = 1

    before = _parse_field_help.cache_info().misses
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: field_help(Fresh), range(32)))
    assert results == [{"steps": "How many steps."}] * 32
    assert _parse_field_help.cache_info().misses == before + 1
    results[0]["steps"] = "changed by a caller"
    assert field_help(Fresh) == {"steps": "How many steps."}  # callers get copies

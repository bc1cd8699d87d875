"""The one progress protocol: the CLI's tqdm bars, the silent default and the test
recorder are used alike by the services, and a service's bars are always closed."""

from __future__ import annotations

import pytest

from mapsvc.commands.common import progress as cli_progress
from mapsvc.core.progress import ProgressBar, closes_bars, no_progress
from tests.core.recording_progress import RecordingProgress


@pytest.mark.parametrize("factory", [cli_progress, no_progress, RecordingProgress()])
def test_every_factory_makes_the_same_kind_of_bar(factory) -> None:
    with factory([1, 2, 3], total=3, desc="copy", unit="rows") as bar:
        assert isinstance(bar, ProgressBar)
        assert list(bar) == [1, 2, 3]
        bar.set_description("route")
        bar.update(0)
    counter = factory(total=None, desc="read", unit="rows")
    counter.update(5)
    counter.close()


def test_the_silent_default_iterates_and_shows_nothing(capsys) -> None:
    with no_progress(range(4), desc="x") as bar:
        assert sum(bar) == 6
    assert list(no_progress()) == []
    assert capsys.readouterr() == ("", "")


@closes_bars
def _stages(fail: bool, *, progress=no_progress) -> str:
    bar = progress(total=2, desc="copy")  # opened without a with block
    bar.update(1)
    bar.set_description("insert")
    if fail:
        raise ValueError("refused")
    bar.update(1)
    return "done"


def test_closes_bars_closes_them_on_return_and_on_error() -> None:
    rec = RecordingProgress()
    assert _stages(False, progress=rec) == "done"
    assert rec.steps == [["insert", 2, 2]] and rec.all_closed
    rec = RecordingProgress()
    with pytest.raises(ValueError, match="refused"):
        _stages(True, progress=rec)
    assert rec.steps == [["insert", 2, 1]] and rec.all_closed
    assert _stages(False) == "done"  # the default needs no factory

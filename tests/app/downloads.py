"""Read what a download button would give the user, inside AppTest.

AppTest keeps download data in a media store that lives only for one run, so the
``downloads`` fixture records every file handed to it by id.
"""

from __future__ import annotations

import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):  # type: ignore[no-untyped-def]
        file_id = original(self, path_or_data, mimetype, kind, filename)
        files[file_id] = path_or_data if isinstance(path_or_data, bytes) else path_or_data.encode()
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    return files


def download_text(at: AppTest, files: dict[str, bytes], label: str) -> str:
    """The text the download button labelled ``label`` gives."""
    buttons = [b for b in at.get("download_button") if b.label == label]
    assert buttons, f"no download button {label!r}: {[b.label for b in at.get('download_button')]}"
    file_id = buttons[0].proto.url.rsplit("/", 1)[-1].split(".")[0]
    return files[file_id].decode()

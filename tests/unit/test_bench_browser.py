import json

from core.bench.browser import main, summarise


def _run(browser, server):
    turn = {k: 1.0 for k in ("endpoint_ms", "stt_ms", "reply_first_token_ms", "tts_first_audio_ms")}
    return {"browser": {"voice_to_voice_ms": browser}, "turn": {**turn, "voice_to_voice_ms": server}}


def test_summary_splits_what_the_browser_adds(tmp_path, capsys):
    runs = [_run(900.0 + 10 * i, 600.0) for i in range(10)]
    s = summarise(runs)
    assert s["turns_measured"] == 10
    assert s["browser_voice_to_voice_ms"]["p50"] == 945.0
    assert s["transport_and_playout_ms"]["p50"] == 345.0
    for i, r in enumerate(runs):
        (tmp_path / f"run{i}.json").write_text(json.dumps(r))
    assert main([str(tmp_path)]) == 0
    assert "p50 945.0 ms" in capsys.readouterr().out
    assert main([str(tmp_path / "none")]) == 2

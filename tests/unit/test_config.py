import pytest

from core.config import ConfigError, Settings, load_settings


def test_embedded_default_needs_no_key(monkeypatch, tmp_path):
    for var in ("DEEPGRAM_API_KEY", "OPENAI_API_KEY", "ELEVENLABS_API_KEY", "GEMINI_API_KEY", "DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings({"data_dir": tmp_path})
    assert (s.stt_provider, s.llm_provider, s.tts_provider, s.store_provider) == (
        "moonshine", "embedded", "piper", "sqlite",
    )


@pytest.mark.parametrize(
    "stage,provider,var",
    [
        ("stt_provider", "deepgram", "DEEPGRAM_API_KEY"),
        ("llm_provider", "openai", "OPENAI_API_KEY"),
        ("llm_provider", "gemini", "GEMINI_API_KEY"),
        ("tts_provider", "elevenlabs", "ELEVENLABS_API_KEY"),
        ("store_provider", "postgres", "DATABASE_URL"),
    ],
)
def test_missing_key_fails_fast_naming_the_variable(monkeypatch, stage, provider, var):
    monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.setenv(f"VC_{stage.upper()}", provider)
    with pytest.raises(ConfigError, match=var):
        load_settings()


def test_key_from_environment_or_secrets_satisfies_the_check(monkeypatch):
    monkeypatch.setenv("VC_STT_PROVIDER", "deepgram")
    monkeypatch.setenv("DEEPGRAM_API_KEY", "dg-secret-123456")
    assert load_settings().deepgram_api_key == "dg-secret-123456"
    monkeypatch.delenv("DEEPGRAM_API_KEY")
    s = load_settings({"DEEPGRAM_API_KEY": "from-secrets-abcdef"})
    assert s.deepgram_api_key == "from-secrets-abcdef"
    masked = s.masked()["deepgram_api_key"]
    assert "secrets" not in masked and masked.startswith("from")


def test_invalid_values_are_specific(monkeypatch):
    monkeypatch.setenv("VC_END_OF_UTTERANCE_SILENCE_MS", "5")
    with pytest.raises(ConfigError, match="end_of_utterance_silence_ms"):
        load_settings()
    monkeypatch.setenv("VC_END_OF_UTTERANCE_SILENCE_MS", "500")
    monkeypatch.setenv("VC_STT_PROVIDER", "carrier-pigeon")
    with pytest.raises(ConfigError, match="stt_provider"):
        load_settings()


def test_missing_pack_folder(tmp_path):
    with pytest.raises(ConfigError, match="VC_PACK_DIR"):
        load_settings({"pack_dir": tmp_path / "nope"})


def test_relative_paths_resolve_against_project():
    s = Settings(data_dir="somewhere")
    assert s.data_dir.is_absolute() and s.data_dir.name == "somewhere"

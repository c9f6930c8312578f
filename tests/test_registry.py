import pytest

from lcefr.registry import Registry, UnknownNameError


def test_register_get_and_list_with_glob():
    reg = Registry("thing")

    @reg.register
    def alpha():
        return "a"

    @reg.register(name="beta_1", colour="red")
    def make_beta():
        return "b"

    assert reg.get("alpha")() == "a"
    assert reg.get("beta_1")() == "b"
    assert reg.entry("beta_1").tags == {"colour": "red"}
    assert reg.list() == ["alpha", "beta_1"]
    assert reg.list("b*") == ["beta_1"]
    assert "alpha" in reg and len(reg) == 2


def test_duplicate_name_is_an_error():
    reg = Registry("thing")
    reg.register(lambda: 1, name="x")
    with pytest.raises(ValueError, match="already registered"):
        reg.register(lambda: 2, name="x")


def test_unknown_name_lists_known_names():
    reg = Registry("model")
    reg.register(lambda: 1, name="quick")
    reg.register(lambda: 1, name="dense")
    with pytest.raises(UnknownNameError) as info:
        reg.get("qiuck")
    assert str(info.value) == "unknown model 'qiuck'; known: dense, quick"


def test_model_registry_names_and_tags():
    from lcefr.models import list_models, model_info

    required = {
        "quicknet_small", "quicknet", "quicknet_large",
        "binary_densenet28", "binary_densenet37", "binary_densenet45",
        "binaryfacenet", "ir18", "adabin_r18", "mobilefacenet",
    }
    assert required <= set(list_models())
    assert all(n.startswith("test_") for n in set(list_models("test_*")))
    assert not any(n.startswith("test_") for n in list_models(include_tests=False))
    assert model_info("binaryfacenet").embedding_size == 128
    assert not model_info("binaryfacenet").lce_native
    assert model_info("quicknet").embedding_size == 512 and model_info("quicknet").binary
    assert not model_info("ir18").binary


def test_create_model_rejects_bad_arguments():
    from lcefr.models import create_model

    with pytest.raises(UnknownNameError, match="known: "):
        create_model("resnet9000")
    with pytest.raises(ValueError, match=r"Expected an input shape .* got \(112, 112, 1\)"):
        create_model("test_quicknet", input_shape=(112, 112, 1))

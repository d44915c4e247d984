import pytest

from shared.sealing import CannotUnseal, new_data_key, seal, unseal


def test_sealed_data_opens_only_with_its_key_and_its_help_request():
    key = new_data_key()
    sealed = seal(key, {"phone": "0612345678"}, bound_to="hr-1")
    assert "0612345678" not in sealed
    assert unseal(key, sealed, bound_to="hr-1") == {"phone": "0612345678"}
    with pytest.raises(CannotUnseal):
        unseal(new_data_key(), sealed, bound_to="hr-1")
    with pytest.raises(CannotUnseal):
        unseal(key, sealed, bound_to="hr-2")


def test_every_seal_is_different():
    key = new_data_key()
    assert seal(key, {"a": 1}, bound_to="x") != seal(key, {"a": 1}, bound_to="x")

"""The package root exports exactly its public names, and each one resolves."""

from __future__ import annotations

import vibekit_telemetry


def test_all_names_resolve() -> None:
    for name in vibekit_telemetry.__all__:
        assert getattr(vibekit_telemetry, name) is not None, name


def test_every_public_export_is_listed() -> None:
    exported = set(vibekit_telemetry._EXPORTS)
    assert exported | {"__version__"} == set(vibekit_telemetry.__all__)

"""The Secrets' encryption keys of a running master: the start-up check and SIGHUP's reload.

Both ask the same question of a key set: can it open every Secret this replica holds? A master
whose keys cannot stops with one line (rather than serve errors for every Secret read); a reload
whose keys cannot is refused and the old keys stay in use.
"""

from __future__ import annotations

import logging

from hakube.apiserver import encryption
from hakube.apiserver.encryption import Transformer
from hakube.store.fsm import StoreFSM

log = logging.getLogger("hakube.master")


def check(fsm: StoreFSM, transformer: Transformer) -> str | None:
    """The start-up check (after a barrier, so this replica holds every committed Secret):
    ``None``, or the one line the master stops with."""
    problem = encryption.check_stored(fsm, transformer)
    return None if problem is None else f"hakube master: cannot decrypt stored data: {problem}"


def reload(path: str, fsm: StoreFSM, transformer: Transformer) -> None:
    """SIGHUP: re-read --encryption-provider-config into ``transformer`` (replaced in place,
    so the API, the watch hub and the token reader see the new keys). A file that is unusable,
    or whose keys cannot open the Secrets this replica holds, is refused with one logged line
    and the old keys stay in use."""
    if not path:
        log.warning("SIGHUP: no --encryption-provider-config to reload")
        return
    try:
        new = encryption.load_config(path)
    except encryption.EncryptionConfigError as exc:
        log.error("encryption config not reloaded, the old keys stay in use: %s", exc)
        return
    problem = encryption.check_stored(fsm, new)
    if problem is not None:
        log.error("encryption config not reloaded, the old keys stay in use: %s", problem)
        return
    transformer.replace(new)
    log.info("reloaded encryption config %s: writes use %s", path, new.describe())

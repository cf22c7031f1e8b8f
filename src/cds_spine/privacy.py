"""Patient ids never appear in logs in the clear: a keyed hash (HMAC-SHA256) stands for them."""
from __future__ import annotations

import hashlib
import hmac


class PatientIdHasher:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, patient_id: str) -> str:
        return hmac.new(self._key, patient_id.encode(), hashlib.sha256).hexdigest()[:24]

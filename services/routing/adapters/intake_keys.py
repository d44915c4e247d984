"""Routing's one call to intake: the data key of a help request, to open its sealed handover
details for the entitled agency. Keys are fetched per handover and never stored here, so
destroying the key at intake (erasure) makes routing's copy unreadable too."""

import base64

import httpx


class IntakeKeys:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    def use(self, credential: str) -> None:
        """The service credential (role "service", organisation "routing") to fetch keys with."""
        self.client.headers["Authorization"] = f"Bearer {credential}"

    async def fetch(self, help_request_id: str) -> bytes | None:
        """The key, or None when intake has none (erased or unknown)."""
        response = await self.client.get(f"/v1/help-requests/{help_request_id}/data-key")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return base64.urlsafe_b64decode(response.json()["key"])

    async def close(self) -> None:
        await self.client.aclose()

"""KYC use cases on the partner side: verdicts arriving in signed callbacks, and the session
lookup the sandbox portal needs. Which partner, and how it signs, is the provider's affair."""

from __future__ import annotations

from collections.abc import Mapping

from server.domain.errors import KycSessionNotFound
from server.services.ports import Clock, KycCallback, KycProvider, UnitOfWorkFactory


class KycService:
    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock, provider: KycProvider) -> None:
        self._uow = uow
        self._clock = clock
        self._provider = provider

    async def receive_callback(
        self, *, body: bytes, headers: Mapping[str, str]
    ) -> KycCallback | None:
        """Applies a partner's verdict, or keeps it until the customer reaches `verifying`.

        Partners retry and resend, so this is idempotent: the same verdict again changes
        nothing, and a verdict for a customer whose KYC is already decided is acknowledged
        and ignored (the partner must not keep retrying it). A forged callback changes
        nothing: the provider rejects it before the body is even parsed.
        """
        callback = await self._provider.verify_callback(
            body=body, headers=headers, now=self._clock.now()
        )
        if callback is None:
            return None
        async with self._uow(write=True) as uow:
            customer = await uow.customers.get_by_kyc_session(callback.session_id, for_update=True)
            if customer is None:
                raise KycSessionNotFound()
            if not customer.awaits_kyc_verdict:
                return callback
            if customer.record_kyc_verdict(callback.verdict, self._clock.now()):
                await uow.customers.save(customer)
                await uow.commit()
        return callback

    async def require_session(self, session_id: str) -> None:
        """Raises KycSessionNotFound unless some customer's KYC session has this id."""
        async with self._uow() as uow:
            if await uow.customers.get_by_kyc_session(session_id) is None:
                raise KycSessionNotFound()

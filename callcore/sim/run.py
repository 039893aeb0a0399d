"""The simulator as one object: the PBX, its AMI server, and calls placed into it.

::

    config = SimConfig(agi_address=("127.0.0.1", agi.port))
    async with Simulator(config, clock=clock, seed=7) as sim:
        client = AMIClient(AmiServerSettings("pbx1", "callcore", Secret("s3cret"),
                                             port=sim.ami_port), clock)
        call = await sim.inbound_call(did="+33123456789", caller=Caller(dtmf=(...)))
        record = await call.wait()          # the AGI session's CallRecord

The AMI server listens on 127.0.0.1, port 0 (a free port) unless configured otherwise. Inbound
calls arrive as ``PJSIP/<trunk>-<seq>`` channels in the ``from-trunk`` context, whose dialplan
runs ``AGI(agi://…/inbound/${EXTEN})`` against ``agi_address``.
"""

from __future__ import annotations

import asyncio
import itertools
from types import TracebackType
from typing import Self

import attrs

from callcore.clock import REAL_CLOCK, Clock
from callcore.sim.agi_channel import Caller, CallRecord
from callcore.sim.ami_server import AMIServer
from callcore.sim.callers import AgentModel, CalleeModel, CallerModel
from callcore.sim.dialplan import DEFAULT_DIALPLAN, parse_dialplan
from callcore.sim.pbx import CAPTURE_QUEUES, PBX, Channel, PBXConfig, QueueConfig


@attrs.frozen
class SimConfig:
    """What the simulated Asterisk is: its dialplan, queues, models and manager account."""

    agi_address: tuple[str, int] | None = None
    """The FastAGI server every AGI() reaches; None keeps the dialplan's host:port."""
    dialplan: str = DEFAULT_DIALPLAN
    queues: tuple[QueueConfig, ...] = CAPTURE_QUEUES
    mailboxes: frozenset[str] = frozenset()
    """Voicemail boxes (``mailbox@context``) that exist for ``EXEC VoiceMail``."""
    callee_model: CalleeModel = attrs.field(factory=CalleeModel)
    agent_model: AgentModel = attrs.field(factory=AgentModel)
    caller_model: CallerModel = attrs.field(factory=CallerModel)
    username: str = "callcore"
    secret: str = attrs.field(default="s3cret", repr=False)
    host: str = "127.0.0.1"
    port: int = 0
    trunk: str = "trunk"
    inbound_context: str = "from-trunk"


@attrs.define
class InboundCall:
    """A call placed by :meth:`Simulator.inbound_call`; :meth:`wait` for its AGI record."""

    channel: Channel
    caller: Caller

    async def wait(self) -> CallRecord | None:
        """When the channel has hung up: its last AGI session's record (None if no AGI ran)."""
        await self.channel.ended.wait()
        return self.channel.records[-1] if self.channel.records else None


class Simulator:
    """A simulated Asterisk on loopback; ``async with`` starts and stops it."""

    def __init__(
        self, config: SimConfig | None = None, *, clock: Clock = REAL_CLOCK, seed: int | None = 0
    ) -> None:
        self.config = config or SimConfig()
        self.clock = clock
        self.pbx = PBX(
            PBXConfig(
                dialplan=parse_dialplan(self.config.dialplan),
                queues=self.config.queues,
                agi_address=self.config.agi_address,
                callee_model=self.config.callee_model,
                agent_model=self.config.agent_model,
                media=self.config.caller_model.media,
                missing=self.config.caller_model.missing,
                mailboxes=self.config.mailboxes,
            ),
            clock=clock,
            seed=seed,
        )
        self.ami = AMIServer(
            self.pbx,
            username=self.config.username,
            secret=self.config.secret,
            host=self.config.host,
            port=self.config.port,
        )
        self._trunk_sequence = itertools.count(1)

    @property
    def ami_port(self) -> int:
        return self.ami.port

    async def start(self) -> None:
        await self.ami.start()

    async def close(self) -> None:
        await self.pbx.close()
        await self.ami.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def drop_ami_connections(self) -> None:
        """Cut every AMI connection now; the calls go on, so a client must resync."""
        self.ami.drop_connections()

    async def inbound_call(
        self, did: str, caller: Caller | None = None, *, number: str | None = None
    ) -> InboundCall:
        """A call from the trunk to ``did``; ``caller`` defaults to one drawn from the model."""
        pbx = self.pbx
        if caller is None:
            caller = self.config.caller_model.caller(pbx.rng, number or "5551234")
        name = f"PJSIP/{self.config.trunk}-{next(self._trunk_sequence):08x}"
        chan = pbx.new_channel(
            name,
            context=self.config.inbound_context,
            exten=did,
            state=4,
            device=f"PJSIP/{self.config.trunk}",
        )
        pbx.processed_calls += 1
        chan.caller = caller
        pbx.set_callerid(chan, caller.number, caller.name)
        pbx.device_state(chan.device, "INUSE")
        pbx.start(chan)
        await asyncio.sleep(0)
        return InboundCall(chan, caller)

"""A ClientApp whose partition 1 tampers with its generator after training (for the tests).

It runs the real ClientApp's handlers; only the bytes partition 1 sends change: one byte
of the ``.3dgl`` file is flipped and the message's sha256 recomputed, so the transport is
intact and only the Global Server's validation can tell. Importable in Flower's simulation
process and Ray's workers: the engine puts the test process's import path (the tests folder
included) on their ``PYTHONPATH``.
"""

from __future__ import annotations

from flwr.app import Context, Message
from flwr.clientapp import ClientApp

from threedgl.federation.flower import client_app as real
from threedgl.federation.flower import messages as msg

TAMPERED = 1


def train(message: Message, context: Context) -> Message:
    reply = real.train(message, context)
    if int(context.node_config["partition-id"]) != TAMPERED:
        return reply
    got = msg.read_train_reply(reply.content)
    bad = bytearray(got.artifact)
    bad[-1] ^= 0xFF
    return Message(msg.train_reply(got.client, bytes(bad)), reply_to=message)


app = ClientApp()
app.train()(train)
app.evaluate()(real.evaluate)

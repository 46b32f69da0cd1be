"""A local Lightsail key-pair endpoint that unmodified boto3 and the AWS CLI can talk to."""

# It speaks the real wire protocol (AWS JSON 1.1 over HTTP, SigV4-signed) and
# behaves as ``lightsail-keypair-reference.md`` describes, including the
# reference's "Choices for the emulator" where the service is unverified. It
# serves the key-pair operations and the instance operations key-pair safety
# needs, keeps each account's data apart, can persist to a file, meter calls
# with token buckets, and inject faults (latency, throttling, 500s, lost
# responses). It never talks to AWS (an STS it is pointed at aside).
#
#     config.py      EmulatorConfig: address, data file, credentials, faults
#     server.py      Emulator: threaded HTTP/1.1 server, start/stop, counters
#     protocol.py    the JSON 1.1 envelope: auth, target, faults, dispatch
#     sigv4.py       Authorization header parsing and signature verification
#     accounts.py    access key -> account: --account mappings, STS for temporary keys
#     operations.py  the eight key-pair operations, and the registry of every operation
#     instances.py   CreateInstances, GetInstance(s), DeleteInstance
#     responses.py   pieces every response shares: operations, locations, page tokens
#     shapes.py      request decoding and input validation per the model
#     store.py       thread-safe views of the data per account; transactions and logging
#     tables.py      the data in memory: sorted tables per region; snapshot and change records
#     persist.py     the data file: snapshot plus fsynced append-only change log
#     records.py     the stored records and their JSON form
#     material.py    RSA keys and the fingerprints the service reports
#     faults.py      seeded fault decisions
#     ratelimit.py   token buckets per account and region (``--rate-limit``)
#     errors.py      the service's error responses
#     cli.py         `reconciler emulator` flags and the serve loop

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.errors import EmulatorError
from reconciler.emulator.ratelimit import RateLimit
from reconciler.emulator.server import Emulator
from reconciler.emulator.store import AccountStore, InstanceRecord, KeyPairRecord, Store

__all__ = [
    "AccountStore",
    "Emulator",
    "EmulatorConfig",
    "EmulatorError",
    "InstanceRecord",
    "KeyPairRecord",
    "RateLimit",
    "Store",
]

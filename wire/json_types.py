"""Names for the values that really are arbitrary JSON: a job's payload, result and inputs, an
event's payload, a request's or a response's body, a webhook's message. These are the only places
`Any` stands for a value in this code base, beside three kinds of place a type checker cannot do
better: framework signatures this code overrides or passes through (`*args`, `**kwargs`, Django
admin's `form`, ASGI's `scope`), type parameters of framework generics (`QuerySet[Any]`,
`Serializer[Any]`), and objects of libraries that ship no types (kombu's channel, redis-py's
answers, pynvml, boto3, websocket-client).

Why `Any` and not a recursive union: a payload's shape is the tenant's and its engine's business; the
code that reads one checks each field it uses at the edge (`wire/edge.py`, the serializers), where a
recursive type would demand a cast at every access and prove nothing more.
"""

from __future__ import annotations

from typing import Any, TypeAlias

JsonValue: TypeAlias = Any  # None, a bool, a number, a string, or a JsonList / JsonObject of them
JsonObject: TypeAlias = dict[str, Any]
JsonList: TypeAlias = list[Any]

#!/usr/bin/env python3
"""Read and write K2's topics with Confluent's own Python client, to prove a
stock Avro serialiser works with K2's broker and schema registry unchanged.

The Go tests run this with the test venv's python ($K2_TEST_PYTHON, set up by
scripts/test-services.sh) through internal/testsvc.RunPythonScript.

    confluent_avro_check.py --bootstrap 127.0.0.1:9092 --registry http://127.0.0.1:8081 \
        --topic market.crypto.trades.binance --read 100 --produce 25 --symbol ETHUSDT

--read N consumes the topic from its start with an AvroDeserializer (the writer
schema each record's id names) until N records arrived; --produce N writes N
trades with an AvroSerializer configured as a producer that writes "the
topic's schema" would be: default subject naming (TopicNameStrategy,
"<topic>-value"), auto.register.schemas false, use.latest.version true. It
prints ONE JSON object on stdout:

    {"subject": {"subject": "market.crypto.trades.binance-value", "version": 1, "id": 1},
     "read": [{"trade_id": "BINANCE-1", "symbol": "BTCUSDT", "price": "61837.63",
               "quantity": "0.02", "timestamp": 1723161255342000, "side": "SELL"}, ...],
     "produced": [{"trade_id": "BINANCE-PY0", "message_id": "...", "price": "3001.25", ...}, ...]}

Decimals are printed as Python Decimal strings (trailing zeros dropped),
timestamps as microseconds since the epoch.
"""

import argparse
import datetime as dt
import decimal
import json
import sys
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def micros(t):
    if isinstance(t, dt.datetime):
        return (t - EPOCH) // dt.timedelta(microseconds=1)
    return int(t)


def dec(d):
    return str(d.normalize()) if d != 0 else "0"


def summary(v):
    return {
        "trade_id": v["trade_id"],
        "message_id": v["message_id"],
        "symbol": v["symbol"],
        "price": dec(v["price"]),
        "quantity": dec(v["quantity"]),
        "timestamp": micros(v["timestamp"]),
        "side": v["side"],
    }


def read(args, registry):
    deser = AvroDeserializer(registry)
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "confluent-avro-check",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    c.subscribe([args.topic])
    out = []
    try:
        deadline = dt.datetime.now() + dt.timedelta(seconds=args.timeout)
        while len(out) < args.read:
            if dt.datetime.now() > deadline:
                sys.exit(f"read {len(out)} of {args.read} records from {args.topic} in {args.timeout}s")
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                sys.exit(f"consume {args.topic}: {m.error()}")
            v = deser(m.value(), SerializationContext(m.topic(), MessageField.VALUE))
            out.append(summary(v))
    finally:
        c.close()
    return out


def produce(args, registry):
    ser = AvroSerializer(registry, None, conf={"auto.register.schemas": False, "use.latest.version": True})
    keys = StringSerializer()
    p = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True})
    errors = []
    out = []
    base = dt.datetime(2024, 8, 9, 0, 0, 0, tzinfo=dt.timezone.utc)
    for i in range(args.produce):
        trade = {
            "message_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"confluent-avro-check/{args.symbol}/{i}")),
            "trade_id": f"BINANCE-PY{i}",
            "symbol": args.symbol,
            "exchange": "BINANCE",
            "asset_class": "crypto",
            "timestamp": base + dt.timedelta(milliseconds=i),
            "price": decimal.Decimal("3001.25") + decimal.Decimal(i) / 100,
            "quantity": decimal.Decimal("0.5"),
            "currency": "USDT",
            "side": "BUY" if i % 2 else "SELL",
            "trade_conditions": [],
            "source_sequence": i + 1,
            "ingestion_timestamp": base + dt.timedelta(milliseconds=i, microseconds=500),
            "platform_sequence": None,
            "vendor_data": None,
        }
        ctx = SerializationContext(args.topic, MessageField.VALUE)
        p.produce(args.topic, key=keys(args.symbol), value=ser(trade, ctx),
                  on_delivery=lambda err, msg: err and errors.append(str(err)))
        out.append(summary(trade))
    if p.flush(args.timeout) != 0 or errors:
        sys.exit(f"produce to {args.topic}: {errors or 'records still queued'}")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--read", type=int, default=0)
    ap.add_argument("--produce", type=int, default=0)
    ap.add_argument("--symbol", default="ETHUSDT")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    subject = f"{args.topic}-value"  # what TopicNameStrategy names it
    latest = registry.get_latest_version(subject)
    result = {"subject": {"subject": latest.subject, "version": latest.version, "id": latest.schema_id}}
    result["read"] = read(args, registry) if args.read else []
    result["produced"] = produce(args, registry) if args.produce else []
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write a tiny Iceberg table with PyIceberg itself, for testing the harness.

Used by internal/testsvc's tests (and by hand) to prove that the venv, the S3
settings and scripts/pyiceberg_check.py work, independently of K2's writer:

    pyiceberg_smoke.py --catalog-uri sqlite:////tmp/x/catalog.db --warehouse s3://k2-test/x \
        --s3-endpoint http://127.0.0.1:59000 --s3-access-key K --s3-secret-key S \
        --s3-region us-east-1 --table smoke.trades

It (re)creates the table (partitioned by symbol, sorted by ts), appends five
rows, and prints one JSON object on stdout with what pyiceberg_check.py should
then report: {"rows": 5, "decimal_sums": {...}, "min_max": {...},
"metadata_location": "...", "snapshot_id": N}. The catalog's tables are
created when missing. Errors: message on stderr, exit code 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyiceberg_check as chk  # noqa: E402  (same folder)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog-uri", required=True)
    p.add_argument("--catalog-name", default="k2")
    p.add_argument("--warehouse", required=True)
    p.add_argument("--s3-endpoint")
    p.add_argument("--s3-access-key")
    p.add_argument("--s3-secret-key")
    p.add_argument("--s3-region")
    p.add_argument("--table", default="smoke.trades")
    a = p.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")

    try:
        import pyarrow as pa
        from pyiceberg.catalog.sql import SqlCatalog
        from pyiceberg.partitioning import PartitionField, PartitionSpec
        from pyiceberg.schema import Schema
        from pyiceberg.table.sorting import SortField, SortOrder
        from pyiceberg.transforms import IdentityTransform
        from pyiceberg.types import DecimalType, LongType, NestedField, StringType, TimestamptzType

        props = chk.io_properties(a)
        props["uri"] = chk.sqlalchemy_uri(a.catalog_uri)
        props["warehouse"] = a.warehouse
        cat = SqlCatalog(a.catalog_name, **props)

        ns = a.table.rsplit(".", 1)[0]
        cat.create_namespace_if_not_exists(ns)
        if cat.table_exists(a.table):
            cat.drop_table(a.table)

        schema = Schema(
            NestedField(1, "symbol", StringType(), required=True, doc="ticker symbol"),
            NestedField(2, "ts", TimestamptzType(), required=True, doc="trade time, UTC"),
            NestedField(3, "price", DecimalType(18, 8), required=True, doc="trade price"),
            NestedField(4, "qty", DecimalType(24, 8), required=False),
            NestedField(5, "seq", LongType(), required=True),
        )
        spec = PartitionSpec(PartitionField(source_id=1, field_id=1000, transform=IdentityTransform(), name="symbol"))
        order = SortOrder(SortField(source_id=2, transform=IdentityTransform()))
        tbl = cat.create_table(a.table, schema=schema, partition_spec=spec, sort_order=order,
                               properties={"format-version": "2"})

        t0 = dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc)
        rows = [
            ("BHP", t0, Decimal("45.12000000"), Decimal("100"), 1),
            ("BHP", t0 + dt.timedelta(microseconds=1), Decimal("45.13000001"), Decimal("0.00000001"), 2),
            ("BHP", t0 + dt.timedelta(seconds=1), Decimal("99999999.99999999"), None, 3),
            ("CBA", t0, Decimal("120.5"), Decimal("12345678901234.5"), 4),
            ("CBA", t0 + dt.timedelta(hours=1), Decimal("0.00000001"), Decimal("-1"), 5),
        ]
        arrow_schema = pa.schema([
            pa.field("symbol", pa.string(), nullable=False),
            pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("price", pa.decimal128(18, 8), nullable=False),
            pa.field("qty", pa.decimal128(24, 8), nullable=True),
            pa.field("seq", pa.int64(), nullable=False),
        ])
        data = pa.Table.from_pylist([dict(zip(arrow_schema.names, r)) for r in rows], schema=arrow_schema)
        tbl.append(data)
        tbl = cat.load_table(a.table)

        price_sum = sum((r[2] for r in rows), Decimal(0))
        qty_sum = sum((r[3] for r in rows if r[3] is not None), Decimal(0))
        out = {
            "rows": len(rows),
            "decimal_sums": {"price": chk.dec_str(price_sum), "qty": chk.dec_str(qty_sum)},
            "min_max": {
                "price": ["0.00000001", "99999999.99999999"],
                "symbol": ["BHP", "CBA"],
                "ts": ["2024-05-01T00:00:00.000000+00:00", "2024-05-01T01:00:00.000000+00:00"],
                "seq": ["1", "5"],
            },
            "bhp_rows": 3,
            "metadata_location": tbl.metadata_location,
            "snapshot_id": tbl.current_snapshot().snapshot_id,
        }
    except Exception as e:  # noqa: BLE001
        print(f"pyiceberg_smoke: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

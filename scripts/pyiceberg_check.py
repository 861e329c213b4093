#!/usr/bin/env python3
"""Read K2's Iceberg tables with PyIceberg, to prove another engine can.

The Go tests run this with the test venv's python ($K2_TEST_PYTHON, set up by
scripts/test-services.sh) through internal/testsvc.RunPyIceberg.

    pyiceberg_check.py --catalog-uri sqlite:////abs/path/catalog.db \
        --warehouse /abs/path/warehouse --table market_data.trades
    pyiceberg_check.py --catalog-uri postgresql+psycopg2://k2:k2@127.0.0.1:55432/k2 \
        --warehouse s3://k2-test/prefix --s3-endpoint http://127.0.0.1:59000 \
        --s3-access-key KEY --s3-secret-key SECRET --s3-region us-east-1 \
        --table market_data.trades --table market_data.quotes
    pyiceberg_check.py --metadata-location s3://.../metadata/00001-....metadata.json \
        --s3-endpoint ... --table market_data.trades      # no catalog at all

Tables are loaded through pyiceberg.catalog.sql.SqlCatalog, which uses the same
tables as the Java JDBC catalog (iceberg_tables, iceberg_namespace_properties)
and never creates them here (init_catalog_tables=false), so a reader cannot
alter the catalog. A postgres:// or postgresql:// URI is taken as
postgresql+psycopg2://.

Each table is scanned fully (or with --filter, a PyIceberg row filter such as
"symbol = 'BHP'") into Arrow, and ONE JSON object is printed on stdout:

    {"tables": {"market_data.trades": {
        "rows": 3,
        "schema": [{"id": 1, "name": "price", "type": "decimal(18, 8)",
                    "required": true, "doc": "..."}],
        "decimal_sums": {"price": "301.5"},
        "min_max": {"price": ["100.25", "101"], "symbol": ["BHP", "CBA"]},
        "null_counts": {"price": 0},
        "snapshot_id": 1234567890123456789,
        "snapshot_count": 1,
        "format_version": 2,
        "partition_spec": "[\\n  1000: symbol: identity(2)\\n]",
        "sort_order": "[\\n  2 ASC NULLS FIRST\\n]",
        "metadata_location": "s3://..."}}}

Formats, so that a Go test can compare with its own values:
  * decimal_sums: exact sum (Python Decimal) of each top-level decimal column,
    nulls skipped, normalised: no exponent, no trailing fractional zeros
    ("301.5", "100", "0", "-0.00000001").
  * min_max: strings, for every top-level primitive column; [null, null] when
    it has no non-null value. Decimals normalised as above; integers in base
    10; floats as Python repr; booleans "true"/"false"; dates "YYYY-MM-DD";
    timestamps ISO 8601 with all digits of the column's unit
    ("2024-05-01T00:00:00.000000", plus "+00:00" for timestamptz);
    binary as hex. Nested columns are left out.
  * snapshot_id is null for a table without snapshots. It is a 64-bit
    integer: decode with json.Decoder.UseNumber in Go.

Errors: a message on stderr and exit code 1 (usage errors: exit 2).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import decimal
import json
import os
import sys
import traceback


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--catalog-uri", help="SQLAlchemy URI of the SQL catalog")
    p.add_argument("--catalog-name", default="k2", help="catalog_name in the catalog tables (default k2)")
    p.add_argument("--warehouse", help="warehouse location (path or s3://bucket/prefix)")
    p.add_argument("--s3-endpoint")
    p.add_argument("--s3-access-key")
    p.add_argument("--s3-secret-key")
    p.add_argument("--s3-region")
    p.add_argument("--metadata-location", help="read this metadata file directly (StaticTable), not via the catalog")
    p.add_argument("--table", action="append", default=[], help="namespace.table; repeatable")
    p.add_argument("--filter", help="PyIceberg row filter, e.g. \"symbol = 'BHP'\"")
    p.add_argument("--traceback", action="store_true", help="print the Python traceback on error")
    a = p.parse_args(argv)
    if a.metadata_location:
        if len(a.table) > 1:
            p.error("--metadata-location reads one table: give at most one --table (used as its key)")
    else:
        if not a.catalog_uri:
            p.error("--catalog-uri is required (or --metadata-location)")
        if not a.table:
            p.error("at least one --table is required")
    return a


def io_properties(a):
    props = {"py-io-impl": "pyiceberg.io.pyarrow.PyArrowFileIO"}
    if a.s3_endpoint:
        props["s3.endpoint"] = a.s3_endpoint
        props["s3.force-virtual-addressing"] = "false"  # path-style, as local S3 servers need
    if a.s3_access_key:
        props["s3.access-key-id"] = a.s3_access_key
    if a.s3_secret_key:
        props["s3.secret-access-key"] = a.s3_secret_key
    if a.s3_region:
        props["s3.region"] = a.s3_region
    return props


def sqlalchemy_uri(uri):
    for prefix in ("postgres://", "postgresql://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg2://" + uri[len(prefix):]
    return uri


def open_catalog(a, props):
    from pyiceberg.catalog.sql import SqlCatalog

    uri = sqlalchemy_uri(a.catalog_uri)
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):].split("?", 1)[0]
        if path and path != ":memory:" and not os.path.exists(path):
            raise FileNotFoundError(f"SQLite catalog {path} does not exist")
    cprops = dict(props)
    cprops["uri"] = uri
    cprops["init_catalog_tables"] = "false"
    if a.warehouse:
        cprops["warehouse"] = a.warehouse
    return SqlCatalog(a.catalog_name, **cprops)


# ------------------------------------------------------------------ format --

def dec_str(d):
    """Exact decimal string without exponent or trailing fractional zeros."""
    if d == 0:
        return "0"
    d = d.normalize(decimal.Context(prec=200))
    return format(d, "f")


_UNIT_DIGITS = {"s": 0, "ms": 3, "us": 6, "ns": 9}
_EPOCH = _dt.datetime(1970, 1, 1)


def ts_str(value, unit, tz):
    digits = _UNIT_DIGITS[unit]
    secs, frac = divmod(value, 10 ** digits)
    s = (_EPOCH + _dt.timedelta(seconds=secs)).strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        s += "." + str(frac).zfill(digits)
    if tz:
        s += "+00:00"  # Iceberg timestamptz values are UTC
    return s


def scalar_str(scalar):
    import pyarrow as pa

    if not scalar.is_valid:
        return None
    t = scalar.type
    if pa.types.is_decimal(t):
        return dec_str(scalar.as_py())
    if pa.types.is_timestamp(t):
        return ts_str(scalar.value, t.unit, t.tz)
    if pa.types.is_boolean(t):
        return "true" if scalar.as_py() else "false"
    if pa.types.is_floating(t):
        return repr(float(scalar.as_py()))
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return scalar.as_py().hex()
    v = scalar.as_py()
    if isinstance(v, (_dt.date, _dt.time)):
        return v.isoformat()
    return str(v)


def is_primitive(t):
    import pyarrow as pa

    return not (pa.types.is_nested(t) or pa.types.is_dictionary(t) or pa.types.is_null(t))


def column_minmax(col):
    import pyarrow as pa
    import pyarrow.compute as pc

    t = col.type
    if pa.types.is_fixed_size_binary(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t):
        vals = [v for v in col.to_pylist() if v is not None]
        if not vals:
            return [None, None]
        return [min(vals).hex(), max(vals).hex()]
    if col.null_count == len(col):
        return [None, None]
    mm = pc.min_max(col)
    return [scalar_str(mm["min"]), scalar_str(mm["max"])]


def column_decimal_sum(col):
    ctx = decimal.Context(prec=200)
    total = decimal.Decimal(0)
    for chunk in col.chunks:
        for v in chunk.to_pylist():
            if v is not None:
                total = ctx.add(total, v)
    return dec_str(total)


# ------------------------------------------------------------------- check --

def describe(tbl, a):
    import pyarrow as pa

    scan = tbl.scan(row_filter=a.filter) if a.filter else tbl.scan()
    data = scan.to_arrow()

    schema = []
    for f in tbl.schema().fields:
        schema.append({
            "id": f.field_id,
            "name": f.name,
            "type": str(f.field_type),
            "required": bool(f.required),
            "doc": f.doc,
        })

    decimal_sums, min_max, null_counts = {}, {}, {}
    for name in data.column_names:
        col = data.column(name)
        null_counts[name] = col.null_count
        if pa.types.is_decimal(col.type):
            decimal_sums[name] = column_decimal_sum(col)
        if is_primitive(col.type):
            min_max[name] = column_minmax(col)

    snap = tbl.current_snapshot()
    meta = tbl.metadata
    return {
        "rows": data.num_rows,
        "schema": schema,
        "decimal_sums": decimal_sums,
        "min_max": min_max,
        "null_counts": null_counts,
        "snapshot_id": snap.snapshot_id if snap else None,
        "snapshot_count": len(meta.snapshots),
        "format_version": meta.format_version,
        "partition_spec": str(tbl.spec()),
        "sort_order": str(tbl.sort_order()),
        "metadata_location": tbl.metadata_location,
    }


def run(a):
    props = io_properties(a)
    out = {}
    if a.metadata_location:
        from pyiceberg.table import StaticTable

        tbl = StaticTable.from_metadata(a.metadata_location, properties=props)
        key = a.table[0] if a.table else "static"
        out[key] = describe(tbl, a)
    else:
        cat = open_catalog(a, props)
        for name in a.table:
            out[name] = describe(cat.load_table(name), a)
    return {"tables": out}


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    real_stdout = sys.stdout
    sys.stdout = sys.stderr  # only the JSON result goes to stdout
    try:
        result = run(a)
    except Exception as e:  # noqa: BLE001 - any failure is reported the same way
        if a.traceback:
            traceback.print_exc()
        print(f"pyiceberg_check: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        sys.stdout = real_stdout
    json.dump(result, real_stdout, sort_keys=True)
    real_stdout.write("\n")
    real_stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

// Exact decimals: the API sends prices as strings of their exact value, and
// the spread shown is their exact difference, not a float's.

const scale = 8; // K2's decimals are decimal(18,8)

function units(s: string): bigint {
  const neg = s.startsWith('-');
  const [int, frac = ''] = (neg ? s.slice(1) : s).split('.');
  const v = BigInt(int || '0') * 10n ** BigInt(scale) + BigInt((frac + '0'.repeat(scale)).slice(0, scale) || '0');
  return neg ? -v : v;
}

function text(v: bigint): string {
  const neg = v < 0n;
  const a = neg ? -v : v;
  const p = 10n ** BigInt(scale);
  const frac = (a % p).toString().padStart(scale, '0').replace(/0+$/, '');
  return (neg ? '-' : '') + (a / p).toString() + (frac ? '.' + frac : '');
}

// sub is a − b, exactly.
export function sub(a: string, b: string): string {
  return text(units(a) - units(b));
}

// add is a + b, exactly.
export function add(a: string, b: string): string {
  return text(units(a) + units(b));
}

// cmp orders two decimals: negative, zero or positive.
export function cmp(a: string, b: string): number {
  const d = units(a) - units(b);
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

package ops

import "fmt"

// Bytes prints a size for people: 512 B, 3.4 KiB, 2.40 MiB, 1.2 GiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 3 {
		v /= unit
		i++
	}
	prec := 1
	if v < 10 {
		prec = 2
	}
	return fmt.Sprintf("%.*f %ciB", prec, v, "KMGT"[i])
}

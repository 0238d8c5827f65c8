#!/usr/bin/env bash
# The CPU's f32 multiply-add peak, the ceiling of every matrix product: twelve independent
# chains of 512-bit FMAs (256-bit with --avx2) held in registers, on one core and then on every
# core at once (one copy per core). docs/bench/model.md compares the forward's GFLOP/s to it.
#   bash scripts/bench/fma_peak.sh [--avx2]
# Needs a C compiler (cc) and, for the default, a CPU with AVX-512F.
set -euo pipefail
width=512
[ "${1:-}" = "--avx2" ] && width=256
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/fma.c" <<EOF
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#if $width == 512
typedef __m512 V;
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define LANES 16
#else
typedef __m256 V;
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define LANES 8
#endif
int main(void) {
    const long n = 400000000L;
    V a[12];
    for (int i = 0; i < 12; i++) a[i] = SET1(1.0f + i * 1e-7f);
    V b = SET1(0.9999999f), c = SET1(1e-7f);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; k++)
        for (int i = 0; i < 12; i++) a[i] = FMA(a[i], b, c);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    float sink[LANES], r = 0;
    for (int i = 0; i < 12; i++) {
        _mm_storeu_ps(sink, _mm_setzero_ps());
        *(V *)sink = a[i];
        r += sink[0];
    }
    printf("%.1f GFLOP/s (checksum %g)\n", n * 12.0 * LANES * 2 / s / 1e9, r);
    return 0;
}
EOF
flags="-O3 -mfma -mavx2"
[ "$width" = 512 ] && flags="$flags -mavx512f"
cc $flags -o "$dir/fma" "$dir/fma.c"
echo "one core: $("$dir/fma")"
cores=$(nproc)
echo "$cores cores at once:"
for _ in $(seq "$cores"); do "$dir/fma" & done
wait

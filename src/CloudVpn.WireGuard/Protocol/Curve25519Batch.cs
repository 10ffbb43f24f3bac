using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// Up to eight independent X25519 (RFC 7748) at once, one per 64-bit lane of AVX-512 registers: the Montgomery
/// ladder in radix 2^25.5 (ten limbs of 26 and 25 bits, the layout of the ref10 code), every lane with its own
/// scalar and point. Each lane costs about half of one libsodium X25519 on the machines we build on, but only when
/// the lanes are filled: the handshake code batches the DH of several handshakes (a burst of initiations, the
/// three DH that share the responder's ephemeral) and uses <see cref="Curve25519"/> for one or two.
/// Constant time in the secret: no branch or memory index depends on a scalar bit (swaps are masks).
/// </summary>
internal static class Curve25519Batch
{
    public const int Lanes = 8;
    private const int KeyLength = Curve25519.KeyLength;

    /// <summary>Whether the lanes run here (AVX-512F); otherwise <see cref="ScalarMult"/> calls libsodium per item.</summary>
    public static bool IsAccelerated => Avx512F.IsSupported;

    /// <summary>
    /// outputs[i] = X25519(scalars[i], points[i]) for i &lt; count (each 32 bytes, packed), count 1..8. Returns a bit
    /// mask of the items whose result is not all zero (bit i set: item i is good; a clear bit means a low-order point
    /// and an all-zero output, which callers must refuse).
    /// </summary>
    public static int ScalarMult(ReadOnlySpan<byte> scalars, ReadOnlySpan<byte> points, Span<byte> outputs, int count)
    {
        if (count is < 1 or > Lanes)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "A batch holds 1 to 8 scalar multiplications.");
        }

        if (scalars.Length < count * KeyLength || points.Length < count * KeyLength || outputs.Length < count * KeyLength)
        {
            throw new ArgumentException($"scalars, points and outputs need {count * KeyLength} bytes each for {count} items.");
        }

        if (!IsAccelerated)
        {
            var good = 0;
            for (var i = 0; i < count; i++)
            {
                var range = new Range(i * KeyLength, (i + 1) * KeyLength);
                if (Curve25519.SharedSecret(outputs[range], scalars[range], points[range]))
                {
                    good |= 1 << i;
                }
            }

            return good;
        }

        return Ladder.Run(scalars, points, outputs, count);
    }

    /// <summary>The eight-lane ladder and its field arithmetic (mod 2^255 - 19).</summary>
    private static class Ladder
    {
        // limb i holds bits [Offset(i), Offset(i) + Width(i)) of the field element: widths 26, 25, 26, 25, ...
        private static ReadOnlySpan<byte> Offsets => [0, 26, 51, 77, 102, 128, 153, 179, 204, 230];

        public static int Run(ReadOnlySpan<byte> scalars, ReadOnlySpan<byte> points, Span<byte> outputs, int count)
        {
            var w = default(Workspace);
            try
            {
                Load(ref w.U, ref w.K, scalars, points, count);
                w.X2[0] = Vector512<ulong>.One;
                w.X3 = w.U;
                w.Z3[0] = Vector512<ulong>.One;
                var swap = Vector512<ulong>.Zero;
                for (var bit = 254; bit >= 0; bit--)
                {
                    var kt = (w.K[bit >> 6] >>> (bit & 63)) & Vector512<ulong>.One;
                    swap ^= kt;
                    var mask = Vector512<ulong>.Zero - swap;
                    Swap(ref w.X2, ref w.X3, mask);
                    Swap(ref w.Z2, ref w.Z3, mask);
                    swap = kt;
                    Step(ref w);
                }

                var last = Vector512<ulong>.Zero - swap;
                Swap(ref w.X2, ref w.X3, last);
                Swap(ref w.Z2, ref w.Z3, last);
                Invert(ref w.T, in w.Z2);
                Mul(ref w.X2, in w.X2, in w.T);
                return Store(ref w.X2, outputs, count);
            }
            finally
            {
                CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref w, 1)));
            }
        }

        /// <summary>One ladder step (RFC 7748 section 5): a differential addition and a doubling.</summary>
        private static void Step(ref Workspace w)
        {
            Add(ref w.A, in w.X2, in w.Z2);
            Sub(ref w.B, in w.X2, in w.Z2);
            Add(ref w.C, in w.X3, in w.Z3);
            Sub(ref w.D, in w.X3, in w.Z3);
            Square(ref w.AA, in w.A);
            Square(ref w.BB, in w.B);
            Mul(ref w.DA, in w.D, in w.A);
            Mul(ref w.CB, in w.C, in w.B);
            Sub(ref w.E, in w.AA, in w.BB);
            Add(ref w.T, in w.DA, in w.CB);
            Square(ref w.X3, in w.T);
            Sub(ref w.T, in w.DA, in w.CB);
            Square(ref w.T, in w.T);
            Mul(ref w.Z3, in w.U, in w.T);
            Mul(ref w.X2, in w.AA, in w.BB);
            MulA24(ref w.T, in w.E);
            Add(ref w.T, in w.T, in w.AA);
            Mul(ref w.Z2, in w.E, in w.T);
        }

        /// <summary>Points into limbs (the top bit of u ignored, RFC 7748 5), clamped scalars into 64-bit words.</summary>
        private static void Load(ref Fe u, ref ScalarWords k, ReadOnlySpan<byte> scalars, ReadOnlySpan<byte> points, int count)
        {
            Span<ulong> limbs = stackalloc ulong[10 * Lanes];
            Span<ulong> words = stackalloc ulong[4 * Lanes];
            Span<byte> scalar = stackalloc byte[KeyLength];
            limbs.Clear();
            words.Clear();
            for (var lane = 0; lane < Lanes; lane++)
            {
                // unused lanes repeat item 0 and are not stored
                var item = lane < count ? lane : 0;
                var point = points.Slice(item * KeyLength, KeyLength);
                var p0 = BinaryPrimitives.ReadUInt64LittleEndian(point);
                var p1 = BinaryPrimitives.ReadUInt64LittleEndian(point[8..]);
                var p2 = BinaryPrimitives.ReadUInt64LittleEndian(point[16..]);
                var p3 = BinaryPrimitives.ReadUInt64LittleEndian(point[24..]) & 0x7FFF_FFFF_FFFF_FFFFUL;
                var value = new UInt128(p1, p0);
                var high = new UInt128(p3, p2);
                for (var limb = 0; limb < 10; limb++)
                {
                    limbs[(limb * Lanes) + lane] = (ulong)(Bits(value, high, Offsets[limb]) & ((1UL << Width(limb)) - 1));
                }

                scalars.Slice(item * KeyLength, KeyLength).CopyTo(scalar);
                scalar[0] &= 248;
                scalar[31] &= 127;
                scalar[31] |= 64;
                for (var w = 0; w < 4; w++)
                {
                    words[(w * Lanes) + lane] = BinaryPrimitives.ReadUInt64LittleEndian(scalar[(8 * w)..]);
                }
            }

            for (var limb = 0; limb < 10; limb++)
            {
                u[limb] = Vector512.Create<ulong>(limbs.Slice(limb * Lanes, Lanes));
            }

            for (var w = 0; w < 4; w++)
            {
                k[w] = Vector512.Create<ulong>(words.Slice(w * Lanes, Lanes));
            }

            CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(words));
            CryptographicOperations.ZeroMemory(scalar);
        }

        /// <summary>The 64 bits of the 256-bit number (high:low) starting at <paramref name="offset"/>.</summary>
        private static ulong Bits(UInt128 low, UInt128 high, int offset) =>
            offset switch
            {
                < 64 => (ulong)(low >> offset),
                < 128 => (ulong)((low >> offset) | (high << (128 - offset))),
                _ => (ulong)(high >> (offset - 128)),
            };

        private static int Width(int limb) => (limb & 1) == 0 ? 26 : 25;

        /// <summary>Fully reduces each lane's value mod p and writes the first <paramref name="count"/> lanes.</summary>
        private static int Store(ref Fe h, Span<byte> outputs, int count)
        {
            Carry(ref h);

            // q = 1 exactly when the value is at least p (ref10's fe_tobytes): then add 19 and drop bit 255
            var q = ((Vector512.Create(19UL) * h[9]) + Vector512.Create(1UL << 24)) >>> 25;
            for (var limb = 0; limb < 10; limb++)
            {
                q = (h[limb] + q) >>> Width(limb);
            }

            h[0] += Vector512.Create(19UL) * q;
            for (var limb = 0; limb < 9; limb++)
            {
                h[limb + 1] += h[limb] >>> Width(limb);
                h[limb] &= Vector512.Create((1UL << Width(limb)) - 1);
            }

            h[9] &= Vector512.Create((1UL << 25) - 1);
            var good = 0;
            Span<byte> bytes = stackalloc byte[KeyLength];
            for (var lane = 0; lane < count; lane++)
            {
                UInt128 low = 0, high = 0;
                for (var limb = 0; limb < 10; limb++)
                {
                    var value = (UInt128)h[limb].GetElement(lane);
                    int offset = Offsets[limb];
                    if (offset < 128)
                    {
                        low |= value << offset;
                        if (offset + Width(limb) > 128)
                        {
                            high |= value >> (128 - offset);
                        }
                    }
                    else
                    {
                        high |= value << (offset - 128);
                    }
                }

                BinaryPrimitives.WriteUInt128LittleEndian(bytes, low);
                BinaryPrimitives.WriteUInt128LittleEndian(bytes[16..], high);
                bytes.CopyTo(outputs.Slice(lane * KeyLength, KeyLength));
                if (bytes.ContainsAnyExcept((byte)0))
                {
                    good |= 1 << lane;
                }
            }

            CryptographicOperations.ZeroMemory(bytes);
            return good;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Swap(ref Fe f, ref Fe g, Vector512<ulong> mask)
        {
            for (var i = 0; i < 10; i++)
            {
                var x = (f[i] ^ g[i]) & mask;
                f[i] ^= x;
                g[i] ^= x;
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Add(ref Fe h, in Fe f, in Fe g)
        {
            for (var i = 0; i < 10; i++)
            {
                h[i] = f[i] + g[i];
            }
        }

        /// <summary>f - g + 2p limb by limb (g's limbs must be carried, so nothing goes below zero).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Sub(ref Fe h, in Fe f, in Fe g)
        {
            h[0] = f[0] + Vector512.Create(0x7FFFFDAUL) - g[0];
            for (var i = 1; i < 10; i++)
            {
                h[i] = f[i] + Vector512.Create((i & 1) == 0 ? 0x7FFFFFEUL : 0x3FFFFFEUL) - g[i];
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<ulong> M(Vector512<ulong> x, Vector512<ulong> y) => Avx512F.Multiply(x.AsUInt32(), y.AsUInt32());

        private static void MulA24(ref Fe h, in Fe f)
        {
            var a24 = Vector512.Create(121665UL);
            for (var i = 0; i < 10; i++)
            {
                h[i] = M(f[i], a24);
            }

            Carry(ref h);
        }

        /// <summary>h = f * g: the schoolbook product with the limbs past 2^255 folded back times 19, odd times odd doubled.</summary>
        private static void Mul(ref Fe h, in Fe f, in Fe g)
        {
            var f0 = f[0];
            var f1 = f[1];
            var f2 = f[2];
            var f3 = f[3];
            var f4 = f[4];
            var f5 = f[5];
            var f6 = f[6];
            var f7 = f[7];
            var f8 = f[8];
            var f9 = f[9];
            var g0 = g[0];
            var g1 = g[1];
            var g2 = g[2];
            var g3 = g[3];
            var g4 = g[4];
            var g5 = g[5];
            var g6 = g[6];
            var g7 = g[7];
            var g8 = g[8];
            var g9 = g[9];
            var n19 = Vector512.Create(19UL);
            var g1x19 = M(g1, n19);
            var g2x19 = M(g2, n19);
            var g3x19 = M(g3, n19);
            var g4x19 = M(g4, n19);
            var g5x19 = M(g5, n19);
            var g6x19 = M(g6, n19);
            var g7x19 = M(g7, n19);
            var g8x19 = M(g8, n19);
            var g9x19 = M(g9, n19);
            var f1x2 = f1 + f1;
            var f3x2 = f3 + f3;
            var f5x2 = f5 + f5;
            var f7x2 = f7 + f7;
            var f9x2 = f9 + f9;
            h[0] = M(f0, g0) + M(f1x2, g9x19) + M(f2, g8x19) + M(f3x2, g7x19) + M(f4, g6x19) + M(f5x2, g5x19) + M(f6, g4x19) + M(f7x2, g3x19) + M(f8, g2x19) + M(f9x2, g1x19);
            h[1] = M(f0, g1) + M(f1, g0) + M(f2, g9x19) + M(f3, g8x19) + M(f4, g7x19) + M(f5, g6x19) + M(f6, g5x19) + M(f7, g4x19) + M(f8, g3x19) + M(f9, g2x19);
            h[2] = M(f0, g2) + M(f1x2, g1) + M(f2, g0) + M(f3x2, g9x19) + M(f4, g8x19) + M(f5x2, g7x19) + M(f6, g6x19) + M(f7x2, g5x19) + M(f8, g4x19) + M(f9x2, g3x19);
            h[3] = M(f0, g3) + M(f1, g2) + M(f2, g1) + M(f3, g0) + M(f4, g9x19) + M(f5, g8x19) + M(f6, g7x19) + M(f7, g6x19) + M(f8, g5x19) + M(f9, g4x19);
            h[4] = M(f0, g4) + M(f1x2, g3) + M(f2, g2) + M(f3x2, g1) + M(f4, g0) + M(f5x2, g9x19) + M(f6, g8x19) + M(f7x2, g7x19) + M(f8, g6x19) + M(f9x2, g5x19);
            h[5] = M(f0, g5) + M(f1, g4) + M(f2, g3) + M(f3, g2) + M(f4, g1) + M(f5, g0) + M(f6, g9x19) + M(f7, g8x19) + M(f8, g7x19) + M(f9, g6x19);
            h[6] = M(f0, g6) + M(f1x2, g5) + M(f2, g4) + M(f3x2, g3) + M(f4, g2) + M(f5x2, g1) + M(f6, g0) + M(f7x2, g9x19) + M(f8, g8x19) + M(f9x2, g7x19);
            h[7] = M(f0, g7) + M(f1, g6) + M(f2, g5) + M(f3, g4) + M(f4, g3) + M(f5, g2) + M(f6, g1) + M(f7, g0) + M(f8, g9x19) + M(f9, g8x19);
            h[8] = M(f0, g8) + M(f1x2, g7) + M(f2, g6) + M(f3x2, g5) + M(f4, g4) + M(f5x2, g3) + M(f6, g2) + M(f7x2, g1) + M(f8, g0) + M(f9x2, g9x19);
            h[9] = M(f0, g9) + M(f1, g8) + M(f2, g7) + M(f3, g6) + M(f4, g5) + M(f5, g4) + M(f6, g3) + M(f7, g2) + M(f8, g1) + M(f9, g0);
            Carry(ref h);
        }

        /// <summary>h = f^2: the symmetric products once, doubled (55 multiplications instead of 100).</summary>
        private static void Square(ref Fe h, in Fe f)
        {
            var f0 = f[0];
            var f1 = f[1];
            var f2 = f[2];
            var f3 = f[3];
            var f4 = f[4];
            var f5 = f[5];
            var f6 = f[6];
            var f7 = f[7];
            var f8 = f[8];
            var f9 = f[9];
            var n19 = Vector512.Create(19UL);
            var n38 = Vector512.Create(38UL);
            var f0x2 = f0 + f0;
            var f1x2 = f1 + f1;
            var f2x2 = f2 + f2;
            var f3x2 = f3 + f3;
            var f4x2 = f4 + f4;
            var f5x2 = f5 + f5;
            var f6x2 = f6 + f6;
            var f7x2 = f7 + f7;
            var f5x38 = M(f5, n38);
            var f6x19 = M(f6, n19);
            var f7x38 = M(f7, n38);
            var f8x19 = M(f8, n19);
            var f9x38 = M(f9, n38);
            h[0] = M(f0, f0) + M(f1x2, f9x38) + M(f2x2, f8x19) + M(f3x2, f7x38) + M(f4x2, f6x19) + M(f5, f5x38);
            h[1] = M(f0x2, f1) + M(f2, f9x38) + M(f3x2, f8x19) + M(f4, f7x38) + M(f5x2, f6x19);
            h[2] = M(f0x2, f2) + M(f1x2, f1) + M(f3x2, f9x38) + M(f4x2, f8x19) + M(f5x2, f7x38) + M(f6, f6x19);
            h[3] = M(f0x2, f3) + M(f1x2, f2) + M(f4, f9x38) + M(f5x2, f8x19) + M(f6, f7x38);
            h[4] = M(f0x2, f4) + M(f1x2, f3x2) + M(f2, f2) + M(f5x2, f9x38) + M(f6x2, f8x19) + M(f7, f7x38);
            h[5] = M(f0x2, f5) + M(f1x2, f4) + M(f2x2, f3) + M(f6, f9x38) + M(f7x2, f8x19);
            h[6] = M(f0x2, f6) + M(f1x2, f5x2) + M(f2x2, f4) + M(f3x2, f3) + M(f7x2, f9x38) + M(f8, f8x19);
            h[7] = M(f0x2, f7) + M(f1x2, f6) + M(f2x2, f5) + M(f3x2, f4) + M(f8, f9x38);
            h[8] = M(f0x2, f8) + M(f1x2, f7x2) + M(f2x2, f6) + M(f3x2, f5x2) + M(f4, f4) + M(f9, f9x38);
            h[9] = M(f0x2, f9) + M(f1x2, f8) + M(f2x2, f7) + M(f3x2, f6) + M(f4x2, f5);
            Carry(ref h);
        }

        /// <summary>Carries limb to limb (ref10's order, two chains interleaved) and the top back to limb 0 times 19.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Carry(ref Fe h)
        {
            var m26 = Vector512.Create((1UL << 26) - 1);
            var m25 = Vector512.Create((1UL << 25) - 1);
            var h0 = h[0];
            var h1 = h[1];
            var h2 = h[2];
            var h3 = h[3];
            var h4 = h[4];
            var h5 = h[5];
            var h6 = h[6];
            var h7 = h[7];
            var h8 = h[8];
            var h9 = h[9];
            h1 += h0 >>> 26;
            h0 &= m26;
            h5 += h4 >>> 26;
            h4 &= m26;
            h2 += h1 >>> 25;
            h1 &= m25;
            h6 += h5 >>> 25;
            h5 &= m25;
            h3 += h2 >>> 26;
            h2 &= m26;
            h7 += h6 >>> 26;
            h6 &= m26;
            h4 += h3 >>> 25;
            h3 &= m25;
            h8 += h7 >>> 25;
            h7 &= m25;
            h5 += h4 >>> 26;
            h4 &= m26;
            h9 += h8 >>> 26;
            h8 &= m26;
            var top = h9 >>> 25; // may pass 32 bits, so times 19 by shifts, not the 32-bit multiply
            h0 += (top << 4) + (top << 1) + top;
            h9 &= m25;
            h1 += h0 >>> 26;
            h0 &= m26;
            h[0] = h0;
            h[1] = h1;
            h[2] = h2;
            h[3] = h3;
            h[4] = h4;
            h[5] = h5;
            h[6] = h6;
            h[7] = h7;
            h[8] = h8;
            h[9] = h9;
        }

        /// <summary>h = z^(p-2) = 1/z (Fermat), the usual chain of 254 squarings and 11 multiplications.</summary>
        private static void Invert(ref Fe h, in Fe z)
        {
            var chain = default(InverseChain);
            ref var z2 = ref chain.Z2;
            ref var z9 = ref chain.Z9;
            ref var z11 = ref chain.Z11;
            ref var z5 = ref chain.Z5;
            ref var z10 = ref chain.Z10;
            ref var z20 = ref chain.Z20;
            ref var z50 = ref chain.Z50;
            ref var z100 = ref chain.Z100;
            ref var t = ref chain.T;
            Square(ref z2, in z);
            Square(ref t, in z2);
            Square(ref t, in t);
            Mul(ref z9, in t, in z);
            Mul(ref z11, in z9, in z2);
            Square(ref t, in z11);
            Mul(ref z5, in t, in z9); // 2^5 - 1
            SquareTimes(ref t, in z5, 5);
            Mul(ref z10, in t, in z5); // 2^10 - 1
            SquareTimes(ref t, in z10, 10);
            Mul(ref z20, in t, in z10); // 2^20 - 1
            SquareTimes(ref t, in z20, 20);
            Mul(ref t, in t, in z20); // 2^40 - 1
            SquareTimes(ref t, in t, 10);
            Mul(ref z50, in t, in z10); // 2^50 - 1
            SquareTimes(ref t, in z50, 50);
            Mul(ref z100, in t, in z50); // 2^100 - 1
            SquareTimes(ref t, in z100, 100);
            Mul(ref t, in t, in z100); // 2^200 - 1
            SquareTimes(ref t, in t, 50);
            Mul(ref t, in t, in z50); // 2^250 - 1
            SquareTimes(ref t, in t, 5);
            Mul(ref h, in t, in z11); // 2^255 - 21 = p - 2
            CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(MemoryMarshal.CreateSpan(ref chain, 1)));
        }

        private static void SquareTimes(ref Fe h, in Fe f, int times)
        {
            Square(ref h, in f);
            for (var i = 1; i < times; i++)
            {
                Square(ref h, in h);
            }
        }
    }

    /// <summary>The ladder's variables, in one block so they are zeroed together.</summary>
    private struct Workspace
    {
        public Fe U, X2, Z2, X3, Z3, A, AA, B, BB, C, D, DA, CB, E, T;
        public ScalarWords K;
    }

    private struct InverseChain
    {
        public Fe Z2, Z9, Z11, Z5, Z10, Z20, Z50, Z100, T;
    }

    /// <summary>A field element in each of the eight lanes: ten limbs, limb-major.</summary>
    [InlineArray(10)]
    private struct Fe
    {
        private Vector512<ulong> _limb;
    }

    /// <summary>Each lane's clamped scalar as four little-endian 64-bit words.</summary>
    [InlineArray(4)]
    private struct ScalarWords
    {
        private Vector512<ulong> _word;
    }
}

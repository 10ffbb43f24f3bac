using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>
/// BLAKE2s (RFC 7693) and what WireGuard builds on it: HASH (BLAKE2s-256), MAC (keyed BLAKE2s-128), HMAC-BLAKE2s
/// (RFC 2104, 64-byte block) and the HKDF-style KDF1..KDF3. The state is a value type on the caller's stack: nothing
/// here allocates, which matters on the cookie path (every handshake message, garbage included, is MACed) and keeps
/// key-derived state out of the heap.
/// </summary>
internal static class Blake2s
{
    public const int HashLength = 32;
    public const int MacLength = 16;
    public const int BlockLength = 64;

    /// <summary>HASH(a || b || c) into 32 bytes.</summary>
    public static void Hash(Span<byte> output, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default, ReadOnlySpan<byte> c = default)
    {
        var state = new Blake2sState(HashLength);
        state.Update(a);
        state.Update(b);
        state.Update(c);
        state.Final(output[..HashLength]);
    }

    /// <summary>Keyed BLAKE2s with an output of <paramref name="output"/>.Length bytes (MAC uses 16).</summary>
    public static void KeyedHash(Span<byte> output, ReadOnlySpan<byte> key, ReadOnlySpan<byte> data)
    {
        var state = new Blake2sState(output.Length, key);
        state.Update(data);
        state.Final(output);
    }

    /// <summary>MAC(key, data): keyed BLAKE2s with a 16-byte output.</summary>
    public static void Mac(Span<byte> output, ReadOnlySpan<byte> key, ReadOnlySpan<byte> data) => KeyedHash(output[..MacLength], key, data);

    /// <summary>HMAC-BLAKE2s-256(key, a || b) into 32 bytes; a || b may be empty.</summary>
    public static void Hmac(Span<byte> output, ReadOnlySpan<byte> key, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
    {
        Span<byte> block = stackalloc byte[BlockLength];
        Span<byte> inner = stackalloc byte[HashLength];
        PadKey(block, key, 0x36);
        var state = new Blake2sState(HashLength);
        state.Update(block);
        state.Update(a);
        state.Update(b);
        state.Final(inner);
        PadKey(block, key, 0x5c);
        state = new Blake2sState(HashLength);
        state.Update(block);
        state.Update(inner);
        state.Final(output[..HashLength]);
        CryptographicOperations.ZeroMemory(block);
        CryptographicOperations.ZeroMemory(inner);
    }

    /// <summary>RFC 2104's K XOR pad: the key (hashed first when longer than a block), zero-filled, XORed with the pad byte.</summary>
    private static void PadKey(Span<byte> block, ReadOnlySpan<byte> key, byte pad)
    {
        block.Clear();
        if (key.Length > BlockLength)
        {
            Hash(block, key);
        }
        else
        {
            key.CopyTo(block);
        }

        for (var i = 0; i < BlockLength; i++)
        {
            block[i] ^= pad;
        }
    }

    /// <summary>
    /// KDFn(key, input): prk = HMAC(key, input); t1 = HMAC(prk, 0x01); t2 = HMAC(prk, t1 || 0x02); t3 = HMAC(prk, t2 || 0x03).
    /// Writes t1 to <paramref name="t1"/> and, when given (non-empty), t2 and t3. Outputs may alias <paramref name="key"/>.
    /// The key blocks of prk are compressed once and reused for t1..t3.
    /// </summary>
    public static void Kdf(ReadOnlySpan<byte> key, ReadOnlySpan<byte> input, Span<byte> t1, Span<byte> t2 = default, Span<byte> t3 = default)
    {
        Span<byte> t = stackalloc byte[HashLength + 1];
        try
        {
            Hmac(t[..HashLength], key, input);
            var prk = new HmacKey(t[..HashLength]);
            t[0] = 1;
            prk.Compute(t[..HashLength], t[..1]);
            t[..HashLength].CopyTo(t1);
            if (!t2.IsEmpty)
            {
                t[HashLength] = 2;
                prk.Compute(t[..HashLength], t);
                t[..HashLength].CopyTo(t2);
                if (!t3.IsEmpty)
                {
                    t[HashLength] = 3;
                    prk.Compute(t[..HashLength], t);
                    t[..HashLength].CopyTo(t3);
                }
            }

            prk.Clear();
        }
        finally
        {
            CryptographicOperations.ZeroMemory(t);
        }
    }

    /// <summary>
    /// An HMAC-BLAKE2s key with its two padded key blocks already compressed: each HMAC under it costs the
    /// compressions of the message and of the inner hash only. The HMAC message must not be empty (WireGuard's never
    /// is), because BLAKE2s compresses a full block only once it knows more input follows.
    /// </summary>
    internal struct HmacKey
    {
        private Blake2sState _inner;
        private Blake2sState _outer;

        public HmacKey(ReadOnlySpan<byte> key)
        {
            Span<byte> block = stackalloc byte[BlockLength];
            PadKey(block, key, 0x36);
            _inner = new Blake2sState(HashLength);
            _inner.AbsorbBlock(block);
            PadKey(block, key, 0x5c);
            _outer = new Blake2sState(HashLength);
            _outer.AbsorbBlock(block);
            CryptographicOperations.ZeroMemory(block);
        }

        /// <summary>HMAC(key, a || b); a || b must not be empty.</summary>
        public readonly void Compute(Span<byte> output, ReadOnlySpan<byte> a, ReadOnlySpan<byte> b = default)
        {
            if (a.IsEmpty && b.IsEmpty)
            {
                throw new ArgumentException("HMAC-BLAKE2s here needs a message of at least one byte.", nameof(a));
            }

            Span<byte> inner = stackalloc byte[HashLength];
            var state = _inner;
            state.Update(a);
            state.Update(b);
            state.Final(inner);
            state = _outer;
            state.Update(inner);
            state.Final(output[..HashLength]);
            CryptographicOperations.ZeroMemory(inner);
        }

        public void Clear()
        {
            _inner.Clear();
            _outer.Clear();
        }
    }
}

/// <summary>
/// An incremental BLAKE2s state (RFC 7693, section 3) held by value: copy it to fork a prefix (a keyed MAC's key
/// block, HMAC's padded keys). <see cref="Final"/> clears it.
/// </summary>
internal struct Blake2sState
{
    private HashWords _h;
    private BlockBytes _block;
    private ulong _counter;
    private int _filled;
    private readonly int _outputLength;

    /// <summary>An unkeyed (empty <paramref name="key"/>) or keyed state producing <paramref name="outputLength"/> bytes.</summary>
    public Blake2sState(int outputLength, ReadOnlySpan<byte> key = default)
    {
        if (outputLength is < 1 or > Blake2s.HashLength)
        {
            throw new ArgumentOutOfRangeException(nameof(outputLength), outputLength, "BLAKE2s output length must be 1..32 bytes.");
        }

        if (key.Length > Blake2s.HashLength)
        {
            throw new ArgumentOutOfRangeException(nameof(key), key.Length, "BLAKE2s key length must be 0..32 bytes.");
        }

        _outputLength = outputLength;
        Blake2sCore.Iv.CopyTo(_h);
        _h[0] ^= 0x01010000u ^ ((uint)key.Length << 8) ^ (uint)outputLength;
        if (!key.IsEmpty)
        {
            // the key is the first block, zero-padded (the block is still all zero here)
            key.CopyTo(_block);
            _filled = Blake2s.BlockLength;
        }
    }

    /// <summary>Absorbs one whole block and compresses it now: only when more input surely follows (HMAC's key block).</summary>
    internal void AbsorbBlock(ReadOnlySpan<byte> block)
    {
        if (_filled != 0 || block.Length != Blake2s.BlockLength)
        {
            throw new InvalidOperationException("AbsorbBlock takes one whole block on an empty buffer.");
        }

        _counter += Blake2s.BlockLength;
        Blake2sCore.Compress(_h, block, _counter, last: false);
    }

    public void Update(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            if (_filled == Blake2s.BlockLength)
            {
                // more input follows, so the buffered block is not the last one
                _counter += Blake2s.BlockLength;
                Blake2sCore.Compress(_h, _block, _counter, last: false);
                _filled = 0;
            }

            if (_filled == 0 && data.Length > Blake2s.BlockLength)
            {
                // whole blocks straight from the input, keeping at least one byte back for the final block
                _counter += Blake2s.BlockLength;
                Blake2sCore.Compress(_h, data[..Blake2s.BlockLength], _counter, last: false);
                data = data[Blake2s.BlockLength..];
                continue;
            }

            var take = Math.Min(Blake2s.BlockLength - _filled, data.Length);
            data[..take].CopyTo(((Span<byte>)_block)[_filled..]);
            _filled += take;
            data = data[take..];
        }
    }

    /// <summary>Writes the digest (its first output.Length bytes, at most the output length chosen) and clears the state.</summary>
    public void Final(Span<byte> output)
    {
        Span<byte> block = _block;
        block[_filled..].Clear();
        _counter += (ulong)_filled;
        Blake2sCore.Compress(_h, block, _counter, last: true);
        if (!BitConverter.IsLittleEndian)
        {
            for (var i = 0; i < 8; i++)
            {
                _h[i] = BinaryPrimitives.ReverseEndianness(_h[i]);
            }
        }

        // h holds the digest as little-endian words
        MemoryMarshal.AsBytes((Span<uint>)_h)[..Math.Min(output.Length, _outputLength)].CopyTo(output);
        Clear();
    }

    public void Clear()
    {
        ((Span<uint>)_h).Clear();
        ((Span<byte>)_block).Clear();
        _counter = 0;
        _filled = 0;
    }

    [InlineArray(8)]
    internal struct HashWords
    {
        private uint _element;
    }

    [InlineArray(Blake2s.BlockLength)]
    private struct BlockBytes
    {
        private byte _element;
    }
}

/// <summary>The BLAKE2s compression function F (RFC 7693, section 3.2), on 32-bit words.</summary>
internal static class Blake2sCore
{
    public static ReadOnlySpan<uint> Iv =>
    [
        0x6A09E667u, 0xBB67AE85u, 0x3C6EF372u, 0xA54FF53Au, 0x510E527Fu, 0x9B05688Cu, 0x1F83D9ABu, 0x5BE0CD19u,
    ];

    /// <summary>
    /// F(h, block, counter, last): 10 rounds of eight G mixes over the 16-word work vector, folded back into h. The
    /// rounds are written out with the message schedule SIGMA applied (round r mixes words SIGMA[r][2i] and
    /// SIGMA[r][2i+1] in its i-th G), so every word stays in a register.
    /// </summary>
    public static void Compress(Span<uint> h, ReadOnlySpan<byte> block, ulong counter, bool last)
    {
        if (Avx512F.VL.IsSupported)
        {
            CompressRows(h, block, counter, last);
        }
        else
        {
            CompressScalar(h, block, counter, last);
        }
    }

    // per round, the message word indices in the order the row-wise rounds take them: the four column mixes' first
    // words, their second words, then the same for the four diagonal mixes (SIGMA[r][0,2,4,6], [1,3,5,7], ...)
    private static ReadOnlySpan<uint> RowSchedule =>
    [
        0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15,
        14, 4, 9, 13, 10, 8, 15, 6, 1, 0, 11, 5, 12, 2, 7, 3,
        11, 12, 5, 15, 8, 0, 2, 13, 10, 3, 7, 9, 14, 6, 1, 4,
        7, 3, 13, 11, 9, 1, 12, 14, 2, 5, 4, 15, 6, 10, 0, 8,
        9, 5, 2, 10, 0, 7, 4, 15, 14, 11, 6, 3, 1, 12, 8, 13,
        2, 6, 0, 8, 12, 10, 11, 3, 4, 7, 15, 1, 13, 5, 14, 9,
        12, 1, 14, 4, 5, 15, 13, 10, 0, 6, 9, 8, 7, 3, 2, 11,
        13, 7, 12, 3, 11, 14, 1, 9, 5, 15, 8, 2, 0, 4, 6, 10,
        6, 14, 11, 0, 15, 9, 3, 8, 12, 13, 1, 10, 2, 7, 4, 5,
        10, 8, 7, 1, 2, 4, 6, 5, 15, 9, 3, 13, 11, 14, 12, 0,
    ];

    /// <summary>
    /// F with the work vector as four rows of four words, one 128-bit vector each (AVX-512VL for the rotates): the four
    /// column mixes run side by side, then the rows are turned so the diagonals line up as columns and turned back.
    /// The message words of each round come from one 16-word permute.
    /// </summary>
    internal static void CompressRows(Span<uint> h, ReadOnlySpan<byte> block, ulong counter, bool last)
    {
        var message = Vector512.Create<uint>(MemoryMarshal.Cast<byte, uint>(block[..Blake2s.BlockLength]));
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("BLAKE2s row form assumes a little-endian machine.");
        }

        var iv = Vector128.Create<uint>(Iv);
        var hLow = Vector128.Create<uint>(h[..4]);
        var hHigh = Vector128.Create<uint>(h[4..8]);
        var a = hLow;
        var b = hHigh;
        var c = iv;
        var d = Vector128.Create<uint>(Iv[4..8]) ^ Vector128.Create((uint)counter, (uint)(counter >> 32), last ? uint.MaxValue : 0u, 0u);
        var schedule = RowSchedule;
        for (var round = 0; round < 10; round++)
        {
            var words = Avx512F.PermuteVar16x32(message, Vector512.Create<uint>(schedule.Slice(16 * round, 16)));
            Mix(ref a, ref b, ref c, ref d, words.GetLower().GetLower(), words.GetLower().GetUpper());
            b = Sse2.Shuffle(b, 0x39); // (v5, v6, v7, v4)
            c = Sse2.Shuffle(c, 0x4E); // (v10, v11, v8, v9)
            d = Sse2.Shuffle(d, 0x93); // (v15, v12, v13, v14)
            Mix(ref a, ref b, ref c, ref d, words.GetUpper().GetLower(), words.GetUpper().GetUpper());
            b = Sse2.Shuffle(b, 0x93);
            c = Sse2.Shuffle(c, 0x4E);
            d = Sse2.Shuffle(d, 0x39);
        }

        (hLow ^ a ^ c).CopyTo(h);
        (hHigh ^ b ^ d).CopyTo(h[4..]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mix(ref Vector128<uint> a, ref Vector128<uint> b, ref Vector128<uint> c, ref Vector128<uint> d, Vector128<uint> x, Vector128<uint> y)
    {
        a += b + x;
        d = Avx512F.VL.RotateRight(d ^ a, 16);
        c += d;
        b = Avx512F.VL.RotateRight(b ^ c, 12);
        a += b + y;
        d = Avx512F.VL.RotateRight(d ^ a, 8);
        c += d;
        b = Avx512F.VL.RotateRight(b ^ c, 7);
    }

    /// <summary>F on sixteen scalar words, for machines without AVX-512VL.</summary>
    internal static void CompressScalar(Span<uint> h, ReadOnlySpan<byte> block, ulong counter, bool last)
    {
        block = block[..Blake2s.BlockLength];
        var m0 = BinaryPrimitives.ReadUInt32LittleEndian(block[0..]);
        var m1 = BinaryPrimitives.ReadUInt32LittleEndian(block[4..]);
        var m2 = BinaryPrimitives.ReadUInt32LittleEndian(block[8..]);
        var m3 = BinaryPrimitives.ReadUInt32LittleEndian(block[12..]);
        var m4 = BinaryPrimitives.ReadUInt32LittleEndian(block[16..]);
        var m5 = BinaryPrimitives.ReadUInt32LittleEndian(block[20..]);
        var m6 = BinaryPrimitives.ReadUInt32LittleEndian(block[24..]);
        var m7 = BinaryPrimitives.ReadUInt32LittleEndian(block[28..]);
        var m8 = BinaryPrimitives.ReadUInt32LittleEndian(block[32..]);
        var m9 = BinaryPrimitives.ReadUInt32LittleEndian(block[36..]);
        var m10 = BinaryPrimitives.ReadUInt32LittleEndian(block[40..]);
        var m11 = BinaryPrimitives.ReadUInt32LittleEndian(block[44..]);
        var m12 = BinaryPrimitives.ReadUInt32LittleEndian(block[48..]);
        var m13 = BinaryPrimitives.ReadUInt32LittleEndian(block[52..]);
        var m14 = BinaryPrimitives.ReadUInt32LittleEndian(block[56..]);
        var m15 = BinaryPrimitives.ReadUInt32LittleEndian(block[60..]);
        var iv = Iv;
        uint v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
        uint v8 = iv[0], v9 = iv[1], v10 = iv[2], v11 = iv[3];
        var v12 = iv[4] ^ (uint)counter;
        var v13 = iv[5] ^ (uint)(counter >> 32);
        var v14 = last ? ~iv[6] : iv[6];
        var v15 = iv[7];
        // round 0: columns, then diagonals
        v0 += v4 + m0; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m1; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m2; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m3; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m4; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m5; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m6; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m7; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m8; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m9; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m10; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m11; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m12; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m13; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m14; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m15; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 1: columns, then diagonals
        v0 += v4 + m14; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m10; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m4; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m8; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m9; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m15; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m13; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m6; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m1; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m12; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m0; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m2; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m11; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m7; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m5; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m3; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 2: columns, then diagonals
        v0 += v4 + m11; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m8; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m12; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m0; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m5; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m2; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m15; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m13; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m10; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m14; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m3; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m6; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m7; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m1; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m9; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m4; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 3: columns, then diagonals
        v0 += v4 + m7; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m9; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m3; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m1; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m13; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m12; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m11; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m14; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m2; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m6; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m5; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m10; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m4; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m0; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m15; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m8; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 4: columns, then diagonals
        v0 += v4 + m9; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m0; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m5; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m7; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m2; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m4; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m10; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m15; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m14; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m1; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m11; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m12; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m6; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m8; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m3; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m13; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 5: columns, then diagonals
        v0 += v4 + m2; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m12; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m6; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m10; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m0; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m11; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m8; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m3; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m4; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m13; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m7; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m5; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m15; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m14; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m1; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m9; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 6: columns, then diagonals
        v0 += v4 + m12; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m5; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m1; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m15; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m14; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m13; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m4; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m10; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m0; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m7; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m6; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m3; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m9; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m2; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m8; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m11; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 7: columns, then diagonals
        v0 += v4 + m13; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m11; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m7; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m14; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m12; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m1; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m3; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m9; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m5; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m0; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m15; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m4; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m8; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m6; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m2; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m10; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 8: columns, then diagonals
        v0 += v4 + m6; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m15; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m14; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m9; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m11; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m3; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m0; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m8; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m12; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m2; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m13; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m7; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m1; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m4; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m10; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m5; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        // round 9: columns, then diagonals
        v0 += v4 + m10; v12 = Ror(v12 ^ v0, 16); v8 += v12; v4 = Ror(v4 ^ v8, 12); v0 += v4 + m2; v12 = Ror(v12 ^ v0, 8); v8 += v12; v4 = Ror(v4 ^ v8, 7);
        v1 += v5 + m8; v13 = Ror(v13 ^ v1, 16); v9 += v13; v5 = Ror(v5 ^ v9, 12); v1 += v5 + m4; v13 = Ror(v13 ^ v1, 8); v9 += v13; v5 = Ror(v5 ^ v9, 7);
        v2 += v6 + m7; v14 = Ror(v14 ^ v2, 16); v10 += v14; v6 = Ror(v6 ^ v10, 12); v2 += v6 + m6; v14 = Ror(v14 ^ v2, 8); v10 += v14; v6 = Ror(v6 ^ v10, 7);
        v3 += v7 + m1; v15 = Ror(v15 ^ v3, 16); v11 += v15; v7 = Ror(v7 ^ v11, 12); v3 += v7 + m5; v15 = Ror(v15 ^ v3, 8); v11 += v15; v7 = Ror(v7 ^ v11, 7);
        v0 += v5 + m15; v15 = Ror(v15 ^ v0, 16); v10 += v15; v5 = Ror(v5 ^ v10, 12); v0 += v5 + m11; v15 = Ror(v15 ^ v0, 8); v10 += v15; v5 = Ror(v5 ^ v10, 7);
        v1 += v6 + m9; v12 = Ror(v12 ^ v1, 16); v11 += v12; v6 = Ror(v6 ^ v11, 12); v1 += v6 + m14; v12 = Ror(v12 ^ v1, 8); v11 += v12; v6 = Ror(v6 ^ v11, 7);
        v2 += v7 + m3; v13 = Ror(v13 ^ v2, 16); v8 += v13; v7 = Ror(v7 ^ v8, 12); v2 += v7 + m12; v13 = Ror(v13 ^ v2, 8); v8 += v13; v7 = Ror(v7 ^ v8, 7);
        v3 += v4 + m13; v14 = Ror(v14 ^ v3, 16); v9 += v14; v4 = Ror(v4 ^ v9, 12); v3 += v4 + m0; v14 = Ror(v14 ^ v3, 8); v9 += v14; v4 = Ror(v4 ^ v9, 7);
        h[0] ^= v0 ^ v8;
        h[1] ^= v1 ^ v9;
        h[2] ^= v2 ^ v10;
        h[3] ^= v3 ^ v11;
        h[4] ^= v4 ^ v12;
        h[5] ^= v5 ^ v13;
        h[6] ^= v6 ^ v14;
        h[7] ^= v7 ^ v15;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Ror(uint value, int count) => BitOperations.RotateRight(value, count);
}

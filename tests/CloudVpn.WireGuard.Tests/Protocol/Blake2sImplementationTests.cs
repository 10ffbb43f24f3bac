using System.Runtime.Intrinsics.X86;
using CloudVpn.WireGuard.Protocol;
using Org.BouncyCastle.Crypto.Digests;
using Org.BouncyCastle.Crypto.Macs;
using Org.BouncyCastle.Crypto.Parameters;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>
/// Our BLAKE2s against BouncyCastle's (an independent implementation) over the lengths where block handling can go
/// wrong (0, 1, 63, 64, 65, 127, 128, 129, ...), split input, keys, short outputs and both compression forms. The
/// published vectors are in <see cref="PrimitiveVectorTests"/>.
/// </summary>
public sealed class Blake2sImplementationTests
{
    private static readonly int[] Lengths = [0, 1, 2, 31, 32, 33, 55, 63, 64, 65, 100, 127, 128, 129, 191, 192, 193, 1000];

    private static byte[] Reference(ReadOnlySpan<byte> data, int outputLength, byte[]? key = null)
    {
        var digest = new Blake2sDigest(key, outputLength, null, null);
        digest.BlockUpdate(data);
        var output = new byte[outputLength];
        digest.DoFinal(output);
        return output;
    }

    private static byte[] Random(Random random, int length)
    {
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public void Hash_matches_the_reference_at_every_block_boundary_and_any_split()
    {
        var random = new Random(7693);
        foreach (var length in Lengths)
        {
            var data = Random(random, length);
            var expected = Reference(data, 32);
            var whole = new byte[32];
            Blake2s.Hash(whole, data);
            Assert.Equal(expected, whole);

            // the same input in three pieces, cut at random places
            var cut1 = random.Next(length + 1);
            var cut2 = random.Next(cut1, length + 1);
            var split = new byte[32];
            Blake2s.Hash(split, data.AsSpan(0, cut1), data.AsSpan(cut1, cut2 - cut1), data.AsSpan(cut2));
            Assert.Equal(expected, split);
        }
    }

    [Fact]
    public void Keyed_hash_matches_the_reference_for_key_and_output_lengths()
    {
        var random = new Random(16);
        foreach (var length in Lengths)
        {
            foreach (var (keyLength, outputLength) in new[] { (1, 32), (16, 16), (32, 16), (32, 32), (7, 1), (32, 20) })
            {
                var key = Random(random, keyLength);
                var data = Random(random, length);
                var output = new byte[outputLength];
                Blake2s.KeyedHash(output, key, data);
                Assert.Equal(Reference(data, outputLength, key), output);
            }
        }
    }

    [Fact]
    public void A_copied_state_forks_the_prefix()
    {
        // the cookie checker copies one keyed state per message; a copy must not disturb the original
        var key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        var template = new Blake2sState(16, key);
        foreach (var length in new[] { 0, 64, 116, 148 })
        {
            var data = Enumerable.Range(0, length).Select(i => (byte)(i * 3)).ToArray();
            var copy = template;
            copy.Update(data);
            var output = new byte[16];
            copy.Final(output);
            Assert.Equal(Reference(data, 16, key), output);
        }
    }

    [Fact]
    public void The_scalar_form_matches_the_reference_and_the_row_form_where_the_CPU_has_it()
    {
        var random = new Random(10);
        for (var i = 0; i < 500; i++)
        {
            // a one-block BLAKE2s-256 by hand: parameter block into h0, the block compressed as the last one
            var block = Random(random, 64);
            var h = Blake2sCore.Iv.ToArray();
            h[0] ^= 0x01010020u;
            Blake2sCore.CompressScalar(h, block, 64, last: true);
            Assert.Equal(Reference(block, 32), h.SelectMany(BitConverter.GetBytes).ToArray());

            // any state, counter and flag: both forms give the same words
            var start = Enumerable.Range(0, 8).Select(_ => (uint)random.NextInt64(0, 1L << 32)).ToArray();
            var counter = (ulong)random.NextInt64() * (i % 3 == 0 ? 1UL : 0x1_0000_0001UL);
            var last = i % 2 == 0;
            var scalar = (uint[])start.Clone();
            Blake2sCore.CompressScalar(scalar, block, counter, last);
            Assert.NotEqual(start, scalar);
            if (Avx512F.VL.IsSupported)
            {
                var rows = (uint[])start.Clone();
                Blake2sCore.CompressRows(rows, block, counter, last);
                Assert.Equal(scalar, rows);
            }
        }
    }

    [Fact]
    public void Hmac_and_the_reused_hmac_key_match_the_reference()
    {
        var random = new Random(2104);
        foreach (var keyLength in new[] { 0, 1, 32, 64, 65, 100 })
        {
            foreach (var length in new[] { 0, 1, 32, 33, 64, 65, 200 })
            {
                var key = Random(random, keyLength);
                var data = Random(random, length);
                var hmac = new HMac(new Blake2sDigest(256));
                hmac.Init(new KeyParameter(key));
                hmac.BlockUpdate(data);
                var expected = new byte[32];
                hmac.DoFinal(expected);

                var oneShot = new byte[32];
                Blake2s.Hmac(oneShot, key, data.AsSpan(0, length / 2), data.AsSpan(length / 2));
                Assert.Equal(expected, oneShot);

                if (length > 0)
                {
                    // the precompressed key gives the same MAC, twice (it is not used up)
                    var reused = new Blake2s.HmacKey(key);
                    var first = new byte[32];
                    var second = new byte[32];
                    reused.Compute(first, data);
                    reused.Compute(second, data.AsSpan(0, 1), data.AsSpan(1));
                    Assert.Equal(expected, first);
                    Assert.Equal(expected, second);
                }
            }
        }
    }

    [Fact]
    public void The_reused_hmac_key_refuses_an_empty_message_instead_of_computing_a_wrong_mac()
    {
        var key = new Blake2s.HmacKey(new byte[32]);
        var error = Assert.Throws<ArgumentException>(() => key.Compute(new byte[32], []));
        Assert.Contains("at least one byte", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_lengths_are_refused_with_the_parameter_named()
    {
        Assert.Equal("outputLength", Assert.Throws<ArgumentOutOfRangeException>(() => new Blake2sState(33)).ParamName);
        Assert.Equal("outputLength", Assert.Throws<ArgumentOutOfRangeException>(() => new Blake2sState(0)).ParamName);
        Assert.Equal("key", Assert.Throws<ArgumentOutOfRangeException>(() => new Blake2sState(32, new byte[33])).ParamName);
    }
}

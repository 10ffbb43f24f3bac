using System.Security.Cryptography;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>
/// The eight-lane X25519 against RFC 7748's vectors and against libsodium, lane by lane. On a CPU without AVX-512 the
/// batch is libsodium item by item, and these tests check that fallback instead.
/// </summary>
public sealed class Curve25519BatchTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex);

    private static byte[] Libsodium(byte[] scalar, byte[] point)
    {
        var output = new byte[32];
        Curve25519.SharedSecret(output, scalar, point);
        return output;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(8)]
    public void Every_lane_matches_the_RFC7748_section_5_2_vectors(int count)
    {
        string[] scalars = ["a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d"];
        string[] points = ["e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493"];
        string[] expected = ["c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552", "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"];
        var s = new byte[count * 32];
        var p = new byte[count * 32];
        var o = new byte[count * 32];
        for (var i = 0; i < count; i++)
        {
            Hex(scalars[i % 2]).CopyTo(s, i * 32);
            Hex(points[i % 2]).CopyTo(p, i * 32);
        }

        Assert.Equal((1 << count) - 1, Curve25519Batch.ScalarMult(s, p, o, count));
        for (var i = 0; i < count; i++)
        {
            Assert.Equal(Hex(expected[i % 2]), o.AsSpan(i * 32, 32).ToArray());
        }
    }

    [Fact]
    public void Random_scalars_and_points_agree_with_libsodium_in_every_lane()
    {
        var random = new Random(7748);
        for (var round = 0; round < 40; round++)
        {
            var count = 1 + (round % 8);
            var s = new byte[count * 32];
            var p = new byte[count * 32];
            var o = new byte[count * 32];
            random.NextBytes(s);
            for (var i = 0; i < count; i++)
            {
                // public keys of random private keys (valid points), and now and then raw random bytes with the
                // top bit set or a value at or above p, which X25519 must take mod p after dropping the top bit
                var point = p.AsSpan(i * 32, 32);
                if ((round + i) % 3 == 0)
                {
                    random.NextBytes(point);
                    if (i % 2 == 0)
                    {
                        point.Fill(0xff);
                        point[0] = (byte)(0xed + random.Next(0x12));
                    }
                }
                else
                {
                    var secret = new byte[32];
                    random.NextBytes(secret);
                    Curve25519.DerivePublic(point, secret);
                }
            }

            Curve25519Batch.ScalarMult(s, p, o, count);
            for (var i = 0; i < count; i++)
            {
                Assert.Equal(Libsodium(s.AsSpan(i * 32, 32).ToArray(), p.AsSpan(i * 32, 32).ToArray()), o.AsSpan(i * 32, 32).ToArray());
            }
        }
    }

    [Fact]
    public void The_base_point_gives_the_public_key()
    {
        var s = RandomNumberGenerator.GetBytes(8 * 32);
        var p = new byte[8 * 32];
        for (var i = 0; i < 8; i++)
        {
            p[i * 32] = 9;
        }

        var o = new byte[8 * 32];
        Assert.Equal(0xff, Curve25519Batch.ScalarMult(s, p, o, 8));
        for (var i = 0; i < 8; i++)
        {
            var expected = new byte[32];
            Curve25519.DerivePublic(expected, s.AsSpan(i * 32, 32));
            Assert.Equal(expected, o.AsSpan(i * 32, 32).ToArray());
        }
    }

    [Fact]
    public void A_low_order_point_clears_only_its_own_lane_bit()
    {
        var s = RandomNumberGenerator.GetBytes(4 * 32);
        var p = new byte[4 * 32];
        for (var i = 0; i < 4; i++)
        {
            Curve25519.DerivePublic(p.AsSpan(i * 32, 32), RandomNumberGenerator.GetBytes(32));
        }

        // lane 1: u = 0; lane 3: u = 1 (both of small order: the result is all zero)
        p.AsSpan(32, 32).Clear();
        p.AsSpan(96, 32).Clear();
        p[96] = 1;
        var o = new byte[4 * 32];
        Assert.Equal(0b0101, Curve25519Batch.ScalarMult(s, p, o, 4));
        Assert.All(o.AsSpan(32, 32).ToArray(), b => Assert.Equal(0, b));
    }

    [Fact]
    public void Bad_counts_and_short_buffers_are_refused()
    {
        var buffer = new byte[8 * 32];
        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => Curve25519Batch.ScalarMult(buffer, buffer, buffer, 0)).ParamName);
        Assert.Equal("count", Assert.Throws<ArgumentOutOfRangeException>(() => Curve25519Batch.ScalarMult(buffer, buffer, buffer, 9)).ParamName);
        Assert.Throws<ArgumentException>(() => Curve25519Batch.ScalarMult(buffer, buffer, new byte[31], 1));
    }
}

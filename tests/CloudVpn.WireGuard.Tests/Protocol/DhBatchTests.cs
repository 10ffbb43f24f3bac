using System.Security.Cryptography;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>
/// <see cref="DhBatch"/>: every item gives libsodium's answer whichever way it runs, and a group goes to the lanes
/// only when its items would cost libsodium more than eight lanes.
/// </summary>
public sealed class DhBatchTests
{
    private static (byte[] Scalar, byte[] Point) RandomPair()
    {
        var scalar = RandomNumberGenerator.GetBytes(32);
        var point = new byte[32];
        Curve25519.DerivePublic(point, RandomNumberGenerator.GetBytes(32));
        return (scalar, point);
    }

    [Theory]
    [InlineData(8, 0, 1)] // eight variable-base items: one group in lanes
    [InlineData(5, 0, 1)] // five: still cheaper in lanes
    [InlineData(4, 0, 0)] // four: libsodium
    [InlineData(0, 8, 0)] // eight public keys: libsodium's fixed-base code is cheaper
    [InlineData(4, 4, 1)] // four of each
    [InlineData(17, 0, 2)] // two full groups in lanes, the seventeenth by libsodium
    [InlineData(16, 8, 2)] // variable-base items first: two groups in lanes, then eight public keys by libsodium
    public void Items_agree_with_libsodium_and_groups_go_to_lanes_when_they_pay(int variable, int fixedBase, int expectedGroups)
    {
        var batch = new DhBatch(32);
        var expected = new List<byte[]>();
        for (var i = 0; i < variable + fixedBase; i++)
        {
            var (scalar, point) = RandomPair();
            var output = new byte[32];
            if (i < variable)
            {
                Assert.Equal(i, batch.Add(scalar, point));
                Curve25519.SharedSecret(output, scalar, point);
            }
            else
            {
                Assert.Equal(i, batch.AddBasePoint(scalar));
                Curve25519.DerivePublic(output, scalar);
            }

            expected.Add(output);
        }

        batch.Run();
        Assert.Equal(Curve25519Batch.IsAccelerated ? expectedGroups : 0, batch.LaneGroupsRun);
        for (var i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i], batch.Result(i).ToArray());
        }
    }

    [Fact]
    public void A_low_order_point_gives_an_empty_result_in_lanes_and_in_libsodium()
    {
        foreach (var count in new[] { 8, 2 })
        {
            var batch = new DhBatch(8);
            for (var i = 0; i < count; i++)
            {
                var (scalar, point) = RandomPair();
                batch.Add(scalar, i == 1 ? new byte[32] : point);
            }

            batch.Run();
            Assert.True(batch.Result(1).IsEmpty);
            Assert.Equal(32, batch.Result(0).Length);
        }
    }

    [Fact]
    public void Capacity_results_and_clear_are_checked()
    {
        var batch = new DhBatch(2);
        var (scalar, point) = RandomPair();
        batch.Add(scalar, point);
        batch.AddBasePoint(scalar);
        Assert.Throws<InvalidOperationException>(() => batch.Add(scalar, point));
        batch.Run();
        Assert.Throws<ArgumentOutOfRangeException>(() => batch.Result(2));
        batch.Clear();
        Assert.Equal(0, batch.Count);
        Assert.Throws<ArgumentOutOfRangeException>(() => batch.Result(0));
    }
}

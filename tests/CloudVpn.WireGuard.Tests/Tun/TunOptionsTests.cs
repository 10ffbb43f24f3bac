using CloudVpn.WireGuard.Tun;

namespace CloudVpn.WireGuard.Tests.Tun;

public sealed class TunOptionsTests
{
    [Fact]
    public void Defaults_are_offloads_coalescing_and_batches_of_128()
    {
        var options = new TunOptions();
        Assert.True(options.Offloads);
        Assert.True(options.Coalesce);
        Assert.Equal(128, options.BatchSize);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(4097)]
    public void A_batch_size_out_of_range_is_refused_naming_the_field(int size)
    {
        // Checked before /dev/net/tun is touched, so this runs without root.
        var e = Assert.Throws<ArgumentException>(() => TunDevice.Create("cvopt0", new TunOptions { BatchSize = size }));
        Assert.Contains("TunOptions.BatchSize", e.Message, StringComparison.Ordinal);
        Assert.Contains(size.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message, StringComparison.Ordinal);
    }
}

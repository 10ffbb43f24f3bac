using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace CloudVpn.WireGuard.Tests.Protocol;

public sealed class EngineLoggingTests
{
    [Fact]
    public void Handshake_life_cycle_is_logged_without_key_material()
    {
        var logger = new FakeLogger<WireGuardEngine>();
        using var pair = new EnginePair(withPsk: true, logger: logger);
        pair.Connect();
        pair.NetworkUp = false;
        pair.Advance(TimeSpan.FromSeconds(200), TimeSpan.FromSeconds(1)); // rekey attempts, retries, give-up

        var records = logger.Collector.GetSnapshot();
        Assert.Contains(records, r => r.Message.Contains("new session as initiator", StringComparison.Ordinal));
        Assert.Contains(records, r => r.Message.Contains("new session as responder", StringComparison.Ordinal));
        Assert.Contains(records, r => r.Message.Contains("handshake retry", StringComparison.Ordinal));
        Assert.Contains(records, r => r.Message.Contains("giving up", StringComparison.Ordinal));

        var secrets = new[] { pair.AKey.ToBase64(), pair.AKey.ToHex(), pair.BKey.ToBase64(), pair.BKey.ToHex(), pair.Psk!.ToBase64(), pair.Psk.ToHex() };
        foreach (var record in records)
        {
            var text = record.Message + string.Join(",", record.StructuredState?.Select(kv => kv.Value) ?? []);
            foreach (var secret in secrets)
            {
                Assert.DoesNotContain(secret, text, StringComparison.OrdinalIgnoreCase);
            }
        }

        Assert.All(records, r => Assert.True(r.Level <= LogLevel.Debug, r.Message));
    }
}

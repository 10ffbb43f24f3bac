using System.Net;
using CloudVpn.WireGuard.Keys;
using CloudVpn.WireGuard.Protocol;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>The engine's one timer for all peers: idle peers cost no entry, removed peers do not pile up.</summary>
public sealed class PeerTimerSchedulerTests
{
    private sealed class NullTransport : IWireGuardTransport
    {
        public int Sent { get; private set; }

        public void SendDatagram(ReadOnlySpan<byte> datagram, IPEndPoint destination) => Sent++;

        public void WriteToTun(ReadOnlySpan<byte> ipPacket)
        {
        }
    }

    [Fact]
    public void Idle_peers_have_no_timer_entry_and_the_entries_of_removed_peers_are_dropped()
    {
        var time = new FakeTimeProvider();
        var transport = new NullTransport();
        using var key = WireGuardSecretKey.GeneratePrivateKey();
        using var engine = new WireGuardEngine(transport, time, NullLogger<WireGuardEngine>.Instance) { PrivateKey = key };
        var endpoint = new IPEndPoint(IPAddress.Parse("203.0.113.9"), 51820);

        var idle = NewKey(0);
        engine.SetPeer(new WireGuardPeerConfig { PublicKey = idle, Endpoint = endpoint, AllowedIps = [IPNetwork.Parse("10.9.0.1/32")] });
        Assert.Equal(0, engine.Timers.Count);

        // peers with a persistent keepalive: each sends an initiation and waits to retransmit it (one entry each)
        var busy = Enumerable.Range(1, 1500).Select(NewKey).ToList();
        foreach (var peer in busy)
        {
            engine.SetPeer(new WireGuardPeerConfig { PublicKey = peer, Endpoint = endpoint, PersistentKeepalive = 25 });
        }

        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1500, engine.Counters.HandshakeInitiationsSent);
        Assert.InRange(engine.Timers.Count, 1500, 4500);

        // removals compact the heap once they are more than half of it: removed peers are not kept for their deadlines
        foreach (var peer in busy)
        {
            Assert.True(engine.RemovePeer(peer));
        }

        Assert.InRange(engine.Timers.Count, 0, 2);
        engine.SetPeer(new WireGuardPeerConfig { PublicKey = NewKey(5000), Endpoint = endpoint, PersistentKeepalive = 25 });
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.InRange(engine.Timers.Count, 1, 3);

        // timers of the remaining peer still run: its initiation is retransmitted after Rekey-Timeout
        var sent = transport.Sent;
        time.Advance(TimeSpan.FromSeconds(6));
        Assert.True(transport.Sent > sent);
    }

    [Fact]
    public void Scheduling_up_to_the_first_compaction_and_through_it_allocates_nothing()
    {
        // A reader thread schedules whenever it moves one of its peer's deadlines earlier, and stale entries stay in
        // the heap until they are due: its growth would land on the data path (88 B for the first 4 entries, then
        // more at each doubling), so it is sized when the engine is made. (The system clock here: the fake one
        // allocates in ITimer.Change, the real one does not; the deadlines are an hour away.)
        using var key = WireGuardSecretKey.GeneratePrivateKey();
        using var engine = new WireGuardEngine(new NullTransport(), TimeProvider.System, NullLogger<WireGuardEngine>.Instance) { PrivateKey = key };
        var publicKey = NewKey(1);
        engine.SetPeer(new WireGuardPeerConfig { PublicKey = publicKey, AllowedIps = [IPNetwork.Parse("10.9.0.1/32")] });
        var peer = engine.FindPeer(publicKey)!;
        var far = engine.NowTicks + TimeSpan.FromHours(1).Ticks;
        engine.Timers.Schedule(peer, far); // the first call's own one-time costs (the timer's first arming)

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 1; i <= 3000; i++)
        {
            engine.Timers.Schedule(peer, far - i); // each earlier than the last: every call adds an entry
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.InRange(engine.Timers.Count, 1, 1025); // compacted (the stale entries went) rather than grown
        Assert.Equal(0, allocated);
    }

    private static WireGuardPublicKey NewKey(int seed)
    {
        var bytes = new byte[32];
        new Random(seed).NextBytes(bytes);
        return new WireGuardPublicKey(bytes);
    }
}

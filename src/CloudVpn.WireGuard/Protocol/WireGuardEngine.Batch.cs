using System.Buffers.Binary;
using System.Net.Sockets;
using CloudVpn.WireGuard.Buffers;

namespace CloudVpn.WireGuard.Protocol;

/// <summary>The batched data path: a batch from the TUN device or the UDP socket at a time, crypto spread over cores.</summary>
public sealed partial class WireGuardEngine
{
    [ThreadStatic]
    private static BatchScratch? t_sealScratch;

    [ThreadStatic]
    private static BatchScratch? t_openScratch;

    private CryptoWorkerPool? _cryptoPool;
    private int _cryptoWorkers = -1;

    /// <summary>
    /// Threads that help the reader threads with the cryptography of a batch (0: each reader encrypts or decrypts its
    /// own batches). Defaults to the number of processors minus one. Per-peer order never depends on it: a batch is
    /// handed on in the order it came in.
    /// </summary>
    public int CryptoWorkers
    {
        get => _cryptoWorkers < 0 ? Math.Max(0, Environment.ProcessorCount - 1) : _cryptoWorkers;
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(value, 256);
            CryptoWorkerPool? old;
            lock (_configLock)
            {
                _cryptoWorkers = value;
                old = Interlocked.Exchange(ref _cryptoPool, null);
            }

            old?.Dispose();
        }
    }

    private CryptoWorkerPool CryptoPool
    {
        get
        {
            var pool = Volatile.Read(ref _cryptoPool);
            if (pool is not null)
            {
                return pool;
            }

            lock (_configLock)
            {
                return _cryptoPool ??= new CryptoWorkerPool(_disposed ? 0 : CryptoWorkers, DataPathAllocations);
            }
        }
    }

    // ================================================================================================ TUN -> UDP

    /// <summary>
    /// Handles a batch of IP packets read from the TUN device (each with <see cref="PacketBatch.Headroom"/> and
    /// <see cref="PacketBatch.Tailroom"/> free around it): routes each, encrypts them in place (spread over the crypto
    /// workers), sets <see cref="PacketBatch.Endpoints"/> for the ones to send and hands the batch to
    /// <see cref="IWireGuardTransport.SendDatagrams(PacketBatch)"/>. A packet for a peer without a session is queued
    /// and starts a handshake, as <see cref="HandleTunPacket"/> does. Never throws for bad input.
    /// </summary>
    public void HandleTunBatch(PacketBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var count = batch.Count;
        if (_disposed || count == 0)
        {
            Array.Clear(batch.Endpoints, 0, count);
            return;
        }

        RunBatch(batch, t_sealScratch ??= new BatchScratch(seal: true), "tun-read");
    }

    private void PrepareSeal(PacketBatch batch, BatchScratch scratch)
    {
        var arena = batch.Arena;
        var mtu = Mtu;
        var now = NowTicks;
        for (var i = 0; i < batch.Count; i++)
        {
            batch.Endpoints[i] = null;
            var offset = batch.Offsets[i];
            var length = batch.Lengths[i];
            var packet = arena.Slice(offset, length);
            var peer = Route(packet);
            if (peer is null)
            {
                continue;
            }

            // packets already waiting for this peer go first: queue behind them and flush after the batch is sent
            if (peer.HasStagedPackets)
            {
                peer.Stage(packet);
                scratch.Defer(peer);
                continue;
            }

            var padded = MessageFormat.PaddedLength(length, mtu);
            if (offset < PacketBatch.Headroom || offset + padded + Aead.TagLength > arena.Length)
            {
                Counters.Drop(WireGuardDropReason.InternalError); // the producer broke the batch contract
                continue;
            }

            var keypair = peer.Current;
            if (keypair is null || keypair.SendExhausted || now - keypair.CreatedTicks >= WireGuardTimers.RejectAfterTime.Ticks || !keypair.TryAcquire())
            {
                peer.Stage(packet);
                SendHandshakeInitiation(peer, isRetry: false);
                continue;
            }

            var counter = keypair.NextSendCounter();
            if (counter >= WireGuardTimers.RejectAfterMessages)
            {
                keypair.Release();
                peer.Stage(packet);
                SendHandshakeInitiation(peer, isRetry: false);
                continue;
            }

            var endpoint = peer.Endpoint;
            if (endpoint is null)
            {
                keypair.Release();
                Counters.Drop(WireGuardDropReason.NoEndpoint);
                continue;
            }

            if (counter > WireGuardTimers.RekeyAfterMessages ||
                (keypair.IsInitiator && now - keypair.CreatedTicks > WireGuardTimers.RekeyAfterTime.Ticks))
            {
                SendHandshakeInitiation(peer, isRetry: false);
            }

            arena.Slice(offset + length, padded - length).Clear();
            var message = arena.Slice(offset - MessageFormat.TransportHeaderLength, MessageFormat.TransportOverhead + padded);
            MessageFormat.WriteType(message, MessageFormat.Transport);
            BinaryPrimitives.WriteUInt32LittleEndian(message[MessageFormat.TransportReceiver..], keypair.RemoteIndex);
            BinaryPrimitives.WriteUInt64LittleEndian(message[MessageFormat.TransportCounter..], counter);
            batch.Offsets[i] = offset - MessageFormat.TransportHeaderLength;
            batch.Lengths[i] = message.Length;
            scratch.Set(i, keypair, counter, peer);
            batch.Endpoints[i] = endpoint;
        }
    }

    private void FinishSeal(PacketBatch batch, BatchScratch scratch)
    {
        var now = NowTicks;
        for (var i = 0; i < batch.Count; i++)
        {
            var peer = scratch.Peers[i];
            if (peer is null)
            {
                continue;
            }

            if (!scratch.Ok[i])
            {
                batch.Endpoints[i] = null;
                Counters.Drop(WireGuardDropReason.InternalError);
                continue;
            }

            peer.AddTx(batch.Lengths[i]);
            peer.TimerAnyAuthenticatedPacketTraversal(now);
            peer.TimerAnyAuthenticatedPacketSent();
            peer.TimerDataSent(now);
        }
    }

    // ================================================================================================ UDP -> TUN

    /// <summary>
    /// Handles a batch of received UDP datagrams (sources in <see cref="PacketBatch.Sources"/>): handshake messages
    /// are handled in order as they come, transport data is decrypted in place (spread over the crypto workers), then
    /// checked in batch order (replay window, allowed source) and each entry is set to the IP packet it carried, or
    /// to length 0 when there is nothing to write; the batch then goes to
    /// <see cref="IWireGuardTransport.WriteToTun(PacketBatch)"/>. Never throws for bad input.
    /// </summary>
    public void HandleDatagramBatch(PacketBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var count = batch.Count;
        if (_disposed || count == 0)
        {
            Array.Clear(batch.Lengths, 0, count);
            return;
        }

        RunBatch(batch, t_openScratch ??= new BatchScratch(seal: false), "udp-read");
    }

    /// <summary>
    /// Both directions: the reader prepares the batch in order, the crypto pool seals or opens it, the reader finishes
    /// it in order and hands it on; the keypair references and queued packets are dealt with whatever happens.
    /// </summary>
    private void RunBatch(PacketBatch batch, BatchScratch scratch, string readerName)
    {
        var count = batch.Count;
        scratch.Begin(batch);
        var allocations = scratch.CounterFor(this, readerName);
        try
        {
            if (scratch.Seals)
            {
                PrepareSeal(batch, scratch);
                CryptoPool.Run(scratch.Job, scratch, count);
                FinishSeal(batch, scratch);
                _transport.SendDatagrams(batch);
            }
            else
            {
                PrepareOpen(batch, scratch);
                CryptoPool.Run(scratch.Job, scratch, count);
                FinishOpen(batch, scratch);
                _transport.WriteToTun(batch);
            }
        }
#pragma warning disable CA1031 // the data path survives a failing transport and never throws to its reader: counted and logged
        catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
        {
            Counters.Drop(WireGuardDropReason.InternalError);
            ReportError(e);
        }
        finally
        {
            scratch.ReleaseAll();
            FlushDeferred(scratch);
            allocations.Sample(count);
        }
    }

    private void PrepareOpen(PacketBatch batch, BatchScratch scratch)
    {
        HandshakeBurst? initiations = null;
        try
        {
            PrepareOpen(batch, scratch, ref initiations);
        }
        finally
        {
            FinishHandshakeBurst(initiations);
        }
    }

    private void PrepareOpen(PacketBatch batch, BatchScratch scratch, ref HandshakeBurst? initiations)
    {
        var arena = batch.Arena;
        var now = NowTicks;
        for (var i = 0; i < batch.Count; i++)
        {
            var datagram = arena.Slice(batch.Offsets[i], batch.Lengths[i]);
            batch.Lengths[i] = 0;
            var source = batch.Sources[i];
            if (source.Family is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
            {
                Counters.Drop(WireGuardDropReason.InternalError);
                continue;
            }

            if (datagram.Length < MessageFormat.TransportOverhead || datagram[0] != MessageFormat.Transport ||
                datagram[1] != 0 || datagram[2] != 0 || datagram[3] != 0)
            {
                // handshakes, cookies and malformed input: handled (or dropped and counted) right here, in order,
                // except initiations, which are answered together after the loop
                HandleHandshakeInBatch(datagram, source, ref initiations);
                continue;
            }

            var receiver = BinaryPrimitives.ReadUInt32LittleEndian(datagram[MessageFormat.TransportReceiver..]);
            if (!_indices.TryGetValue(receiver, out var target) || target is not Keypair keypair || !keypair.TryAcquire())
            {
                Counters.Drop(WireGuardDropReason.UnknownReceiverIndex);
                continue;
            }

            var counter = BinaryPrimitives.ReadUInt64LittleEndian(datagram[MessageFormat.TransportCounter..]);
            if (now - keypair.CreatedTicks >= WireGuardTimers.RejectAfterTime.Ticks)
            {
                keypair.Release();
                Counters.Drop(WireGuardDropReason.KeypairExpired);
                continue;
            }

            if (!keypair.MayAccept(counter))
            {
                keypair.Release();
                Counters.Drop(WireGuardDropReason.ReplayedCounter);
                continue;
            }

            // keep the whole datagram's length for the crypto step (Lengths[i] stays 0 until it checks out)
            scratch.Set(i, keypair, counter, keypair.Peer);
            scratch.Lengths[i] = datagram.Length;
        }
    }

    private void FinishOpen(PacketBatch batch, BatchScratch scratch)
    {
        var arena = batch.Arena;
        var now = NowTicks;
        for (var i = 0; i < batch.Count; i++)
        {
            var keypair = scratch.Keypairs[i];
            if (keypair is null)
            {
                continue;
            }

            if (!scratch.Ok[i])
            {
                Counters.Drop(WireGuardDropReason.DecryptFailed);
                continue;
            }

            if (!keypair.TryAcceptCounter(scratch.Counters[i]))
            {
                Counters.Drop(WireGuardDropReason.ReplayedCounter);
                continue;
            }

            var peer = keypair.Peer;
            var datagramLength = scratch.Lengths[i];
            peer.SetEndpoint(batch.Sources[i]);
            peer.AddRx(datagramLength);
            if (peer.ReceivedWithKeypair(keypair))
            {
                peer.MarkHandshakeComplete(Time.GetUtcNow());
                scratch.Defer(peer);
            }

            AfterAuthenticatedTransport(peer, now);
            var plaintextLength = datagramLength - MessageFormat.TransportOverhead;
            if (plaintextLength == 0)
            {
                continue; // keepalive
            }

            peer.TimerDataReceived(now);
            var plaintextOffset = batch.Offsets[i] + MessageFormat.TransportHeaderLength;
            var plaintext = arena.Slice(plaintextOffset, plaintextLength);
            if (!InnerPacket.TryGetSourceAndLength(plaintext, out var innerSource, out var innerLength))
            {
                Counters.Drop(WireGuardDropReason.InvalidInnerPacket);
                continue;
            }

            if (!ReferenceEquals(_allowedIps.Lookup(innerSource), peer))
            {
                Counters.Drop(WireGuardDropReason.SourceNotAllowed);
                continue;
            }

            batch.Offsets[i] = plaintextOffset;
            batch.Lengths[i] = innerLength;
        }
    }

    private void FlushDeferred(BatchScratch scratch)
    {
        for (var i = 0; i < scratch.DeferredCount; i++)
        {
            var peer = scratch.Deferred[i]!;
            scratch.Deferred[i] = null;
            try
            {
                SendStaged(peer);
            }
#pragma warning disable CA1031 // as on the single-packet path: counted and logged, never thrown to the reader
            catch (Exception e) when (e is not OutOfMemoryException)
#pragma warning restore CA1031
            {
                Counters.Drop(WireGuardDropReason.InternalError);
                ReportError(e);
            }
        }

        scratch.DeferredCount = 0;
    }

    /// <summary>Per reader thread and direction: what the crypto step of the current batch needs, reused.</summary>
    private sealed class BatchScratch(bool seal) : IRangeWork
    {
        /// <summary>True for the TUN -> UDP direction (seal), false for UDP -> TUN (open).</summary>
        public bool Seals => seal;

        private PacketBatch? _batch;

        public CryptoWorkerPool.Job Job { get; } = new();

        public Keypair?[] Keypairs { get; private set; } = [];

        public WireGuardPeer?[] Peers { get; private set; } = [];

        public ulong[] Counters { get; private set; } = [];

        public int[] Lengths { get; private set; } = [];

        public bool[] Ok { get; private set; } = [];

        public WireGuardPeer?[] Deferred { get; private set; } = [];

        public int DeferredCount { get; set; }

        private WireGuardEngine? _counterOwner;
        private DataPathThread? _counter;

        /// <summary>This reader thread's allocation counter in <paramref name="engine"/> (registered on first use).</summary>
        public DataPathThread CounterFor(WireGuardEngine engine, string name)
        {
            if (!ReferenceEquals(_counterOwner, engine) || _counter is null)
            {
                _counter = engine.DataPathAllocations.Register($"{name} {Environment.CurrentManagedThreadId}");
                _counterOwner = engine;
            }

            return _counter;
        }

        public void Begin(PacketBatch batch)
        {
            _batch = batch;
            if (Keypairs.Length < batch.Count)
            {
                var size = Math.Max(batch.Capacity, batch.Count);
                Keypairs = new Keypair?[size];
                Peers = new WireGuardPeer?[size];
                Counters = new ulong[size];
                Lengths = new int[size];
                Ok = new bool[size];
                Deferred = new WireGuardPeer?[size];
            }

            Array.Clear(Keypairs, 0, batch.Count);
            Array.Clear(Peers, 0, batch.Count);
            DeferredCount = 0;
        }

        public void Set(int index, Keypair keypair, ulong counter, WireGuardPeer peer)
        {
            Keypairs[index] = keypair;
            Counters[index] = counter;
            Peers[index] = peer;
            Ok[index] = false;
        }

        /// <summary>Remembers a peer whose queued packets must be flushed once the batch is handed on (once per peer).</summary>
        public void Defer(WireGuardPeer peer)
        {
            for (var i = 0; i < DeferredCount; i++)
            {
                if (ReferenceEquals(Deferred[i], peer))
                {
                    return;
                }
            }

            Deferred[DeferredCount++] = peer;
        }

        public void Process(int start, int end)
        {
            var batch = _batch!;
            var arena = batch.Arena;
            for (var i = start; i < end; i++)
            {
                var keypair = Keypairs[i];
                if (keypair is null)
                {
                    continue;
                }

                try
                {
                    if (seal)
                    {
                        var message = arena.Slice(batch.Offsets[i], batch.Lengths[i]);
                        var body = message[MessageFormat.TransportHeaderLength..^Aead.TagLength];
                        Aead.Seal(keypair.SendKey, Counters[i], body, [], message[MessageFormat.TransportHeaderLength..]);
                        Ok[i] = true;
                    }
                    else
                    {
                        var message = arena.Slice(batch.Offsets[i], Lengths[i]);
                        var ciphertext = message[MessageFormat.TransportHeaderLength..];
                        Ok[i] = Aead.Open(keypair.ReceiveKey, Counters[i], ciphertext, [], ciphertext);
                    }
                }
#pragma warning disable CA1031 // a key erased under the packet (peer removed) drops that packet only
                catch (Exception)
#pragma warning restore CA1031
                {
                    Ok[i] = false;
                }
            }
        }

        /// <summary>Gives back every keypair reference the batch took.</summary>
        public void ReleaseAll()
        {
            if (_batch is null)
            {
                return;
            }

            for (var i = 0; i < _batch.Count; i++)
            {
                var keypair = Keypairs[i];
                if (keypair is not null)
                {
                    Keypairs[i] = null;
                    keypair.Release();
                }
            }

            _batch = null;
        }
    }
}

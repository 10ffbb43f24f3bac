using System.Net;
using CloudVpn.WireGuard.Keys;

namespace CloudVpn.Samples.Gateway;

/// <summary>A peer just added, with its client configuration (which holds the client's private key: show it, never log it).</summary>
/// <param name="Peer">The entry written to peers.json.</param>
/// <param name="ClientConfiguration">The wg-quick file for the client.</param>
internal sealed record EnrolledPeer(PeerEntry Peer, string ClientConfiguration);

/// <summary>
/// Adds a peer to peers.json: a fresh client key pair, the next free tunnel address. The client's private key goes only
/// into the returned configuration; the gateway keeps the public key.
/// </summary>
internal static class PeerEnrollment
{
    private static readonly Lock s_lock = new();

    /// <summary>Serializes writers across processes (two --add-peer runs at once); waits up to 10 s for the other one.</summary>
    private static FileStream LockPeersFile(string dataDir)
    {
        var path = Path.Combine(dataDir, ".peers.lock");
        var deadline = Environment.TickCount64 + 10_000;
        while (true)
        {
            try
            {
                // FileShare.None takes an exclusive advisory lock on Linux
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.None);
            }
            catch (IOException) when (Environment.TickCount64 < deadline)
            {
                Thread.Sleep(50);
            }
        }
    }

    public static EnrolledPeer Add(string name, GatewayOptions options, string gatewayPublicKey)
    {
        if (!PeerName.IsValid(name))
        {
            throw new PeersFileException($"--add-peer: '{name}' {PeerName.Rule}");
        }

        lock (s_lock)
        {
            using var fileLock = LockPeersFile(options.DataDir);
            var peers = PeersFile.Load(options.PeersFile).ToList();
            if (peers.Any(p => p.Name == name))
            {
                throw new PeersFileException($"--add-peer: a peer named '{name}' already exists in {options.PeersFile}");
            }

            var (gateway, prefix) = options.ParsedAddress;
            var address = PeersFile.NextFreeAddress(gateway, prefix, peers);
            using var clientKey = WireGuardSecretKey.GeneratePrivateKey();
            var entry = new PeerEntry(name, clientKey.GetPublicKey().ToBase64(), [new IPNetwork(address, 32)]);
            peers.Add(entry);
            PeersFile.Save(options.PeersFile, peers);
            var config = ClientConfig.Render(clientKey, new IPNetwork(address, 32), gatewayPublicKey, ClientConfig.ResolveEndpoint(options), options);
            return new EnrolledPeer(entry, config);
        }
    }
}

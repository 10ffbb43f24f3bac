using System.Security.Cryptography;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>Transport keys in locked native slots: erased when the last user is done, and the slot reused zeroed.</summary>
public sealed class TransportKeyMemoryTests
{
    [Fact]
    public unsafe void A_returned_slot_is_zeroed_and_reused()
    {
        var slot = TransportKeyMemory.Rent();
        var bytes = new Span<byte>((void*)slot, TransportKeyMemory.SlotSize);
        Assert.True(bytes.IndexOfAnyExcept((byte)0) < 0);
        RandomNumberGenerator.Fill(bytes);
        TransportKeyMemory.Return(slot);
        Assert.True(bytes.IndexOfAnyExcept((byte)0) < 0);

        // the free list is last in, first out: the next rent on this thread gets it back (other tests may rent in
        // between, so look for it among a few)
        var rented = Enumerable.Range(0, 64).Select(_ => TransportKeyMemory.Rent()).ToList();
        Assert.Contains(slot, rented);
        rented.ForEach(TransportKeyMemory.Return);
        Assert.True(TransportKeyMemory.Slabs >= 1);
    }

    [Fact]
    public void A_keypair_s_keys_stay_while_a_packet_uses_them_and_are_erased_after()
    {
        var send = RandomNumberGenerator.GetBytes(32);
        var receive = RandomNumberGenerator.GetBytes(32);
        var keypair = new Keypair(null!, send, receive, initiator: true, 1, 2, 0);
        Assert.Equal(send, keypair.SendKey.ToArray());
        Assert.Equal(receive, keypair.ReceiveKey.ToArray());

        Assert.True(keypair.TryAcquire());
        keypair.Retire();
        Assert.False(keypair.TryAcquire());
        Assert.Equal(send, keypair.SendKey.ToArray()); // still in use by the packet that acquired it
        keypair.Release();
        Assert.True(keypair.SendKey.IsEmpty);
        Assert.True(keypair.ReceiveKey.IsEmpty);
    }

    [Fact]
    public void Sealing_with_a_slot_key_equals_sealing_with_an_NSec_key_in_place()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var keypair = new Keypair(null!, key, key, initiator: true, 1, 2, 0);
        using var nsecKey = Aead.ImportKey(Aead.ChaCha, key);
        var plaintext = RandomNumberGenerator.GetBytes(1400);
        var expected = new byte[plaintext.Length + Aead.TagLength];
        Aead.Seal(nsecKey, 42, plaintext, [], expected);
        var buffer = new byte[plaintext.Length + Aead.TagLength];
        plaintext.CopyTo(buffer, 0);
        Aead.Seal(keypair.SendKey, 42, buffer.AsSpan(0, plaintext.Length), [], buffer);
        Assert.Equal(expected, buffer);
        Assert.True(Aead.Open(keypair.ReceiveKey, 42, buffer, [], buffer));
        Assert.Equal(plaintext, buffer.AsSpan(0, plaintext.Length).ToArray());
        keypair.Retire();
    }
}

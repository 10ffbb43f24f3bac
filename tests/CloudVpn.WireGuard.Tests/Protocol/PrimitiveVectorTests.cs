using System.Text;
using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>Every primitive against published vectors (RFC 7693, RFC 7748, RFC 8439, draft-irtf-cfrg-xchacha).</summary>
public sealed class PrimitiveVectorTests
{
    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    private static byte[] Range(int from, int count) => [.. Enumerable.Range(from, count).Select(i => (byte)i)];

    private static readonly byte[] Sunscreen = Encoding.ASCII.GetBytes(
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.");

    [Fact]
    public void Blake2s_abc_matches_RFC7693_appendix_B()
    {
        var output = new byte[32];
        Blake2s.Hash(output, "abc"u8);
        Assert.Equal(Hex("508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"), output);
    }

    [Fact]
    public void Blake2s_hash_of_split_input_equals_hash_of_whole()
    {
        var whole = new byte[32];
        var split = new byte[32];
        Blake2s.Hash(whole, "abcdef"u8);
        Blake2s.Hash(split, "ab"u8, "cd"u8, "ef"u8);
        Assert.Equal(whole, split);
    }

    [Fact]
    public void Blake2s_keyed_empty_input_matches_reference_KAT()
    {
        // blake2s-kat.txt, first keyed entry: key 00..1f, empty input.
        var output = new byte[32];
        Blake2s.KeyedHash(output, Range(0, 32), []);
        Assert.Equal(Hex("48a8997da407876b3d79c0d92325ad3b89cbb754d86ab71aee047ad345fd2c49"), output);
    }

    /// <summary>RFC 7693 appendix E: the self-test "hash of hashes" over output lengths 16..32, keyed and unkeyed.</summary>
    [Fact]
    public void Blake2s_RFC7693_appendix_E_selftest_grand_hash()
    {
        static byte[] Sequence(int length, uint seed)
        {
            var output = new byte[length];
            uint a = 0xDEAD4BAD * seed, b = 1;
            for (var i = 0; i < length; i++)
            {
                var t = a + b;
                a = b;
                b = t;
                output[i] = (byte)(t >> 24);
            }

            return output;
        }

        using var grand = new MemoryStream();
        foreach (var outLength in new[] { 16, 20, 28, 32 })
        {
            foreach (var inLength in new[] { 0, 3, 64, 65, 255, 1024 })
            {
                var input = Sequence(inLength, (uint)inLength);
                var md = new byte[outLength];
                Blake2s.KeyedHash(md, [], input);
                grand.Write(md);
                Blake2s.KeyedHash(md, Sequence(outLength, (uint)outLength), input);
                grand.Write(md);
            }
        }

        var result = new byte[32];
        Blake2s.Hash(result, grand.ToArray());
        Assert.Equal(Hex("6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe"), result);
    }

    [Fact]
    public void Mac_is_keyed_blake2s_with_16_bytes_output()
    {
        // Python: hashlib.blake2s(b"abc", key=bytes(range(32)), digest_size=16)
        var output = new byte[16];
        Blake2s.Mac(output, Range(0, 32), "abc"u8);
        Assert.Equal(Hex("61ba5f165c194692e09d12520cc4c74a"), output);
    }

    [Fact]
    public void Hmac_blake2s_matches_an_independent_RFC2104_implementation()
    {
        // Python: hmac.new(key, b"WireGuard HMAC test", hashlib.blake2s) (block size 64)
        var output = new byte[32];
        Blake2s.Hmac(output, Range(0, 32), "WireGuard HMAC test"u8);
        Assert.Equal(Hex("9826477d736cfb8534349d0b3ca804914a788554527ea0ca7f7f5a39a60b460f"), output);

        // a key longer than the block is hashed first
        Blake2s.Hmac(output, Range(0, 100), "WireGuard "u8, "HMAC test"u8);
        Assert.Equal(Hex("c8937a9786d025a5543eb251d21ab4ff8cfb11544440ee7005346b0c7a9b9f43"), output);
    }

    [Fact]
    public void Kdf_produces_the_hkdf_chain_over_hmac_blake2s()
    {
        var t1 = new byte[32];
        var t2 = new byte[32];
        var t3 = new byte[32];
        Blake2s.Kdf(Range(0, 32), "input keying material"u8, t1, t2, t3);
        Assert.Equal(Hex("d49ec1ae587b690ec2d4c38d1802dd052d26ab3338bc0b665629ece5dfc61ae1"), t1);
        Assert.Equal(Hex("46d705e3e5cbc140bbfdf613d3733a0c3905bf21d5e1b34213c5a2a883b10553"), t2);
        Assert.Equal(Hex("17e6966e3a04136a899866a1650d1a323fdcdcb19956e0e97c6be5291850b302"), t3);

        // KDF1 writes t1 only, and the output may alias the key (C = KDF1(C, x)).
        var chain = Range(0, 32);
        Blake2s.Kdf(chain, "input keying material"u8, chain);
        Assert.Equal(t1, chain);
    }

    [Theory]
    [InlineData("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4", "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c", "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552")]
    [InlineData("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d", "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493", "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957")]
    public void X25519_matches_RFC7748_section_5_2(string scalar, string u, string expected)
    {
        var output = new byte[32];
        Assert.True(Curve25519.SharedSecret(output, Hex(scalar), Hex(u)));
        Assert.Equal(Hex(expected), output);
    }

    [Fact]
    public void X25519_Diffie_Hellman_matches_RFC7748_section_6_1()
    {
        var alicePrivate = Hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        var bobPrivate = Hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        var alicePublic = new byte[32];
        var bobPublic = new byte[32];
        Curve25519.DerivePublic(alicePublic, alicePrivate);
        Curve25519.DerivePublic(bobPublic, bobPrivate);
        Assert.Equal(Hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"), alicePublic);
        Assert.Equal(Hex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"), bobPublic);

        var k1 = new byte[32];
        var k2 = new byte[32];
        Assert.True(Curve25519.SharedSecret(k1, alicePrivate, bobPublic));
        Assert.True(Curve25519.SharedSecret(k2, bobPrivate, alicePublic));
        Assert.Equal(Hex("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"), k1);
        Assert.Equal(k1, k2);
    }

    [Fact]
    public void X25519_refuses_a_low_order_point_giving_an_all_zero_secret()
    {
        var output = new byte[32];
        Assert.False(Curve25519.SharedSecret(output, Range(1, 32), new byte[32]));
    }

    [Fact]
    public void ChaCha20Poly1305_matches_RFC8439_section_2_8_2()
    {
        var expected = Hex(
            "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b" +
            "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
            "3ff4def08e4b7a9de576d26586cec64b6116" + "1ae10b594f09e26a7e902ecbd0600691");
        using var key = Aead.ImportKey(Aead.ChaCha, Range(0x80, 32));
        var nonce = Hex("070000004041424344454647");
        var ad = Hex("50515253c0c1c2c3c4c5c6c7");
        var ciphertext = new byte[Sunscreen.Length + 16];
        Aead.ChaCha.Encrypt(key, nonce, ad, Sunscreen, ciphertext);
        Assert.Equal(expected, ciphertext);

        var plaintext = new byte[Sunscreen.Length];
        Assert.True(Aead.ChaCha.Decrypt(key, nonce, ad, ciphertext, plaintext));
        Assert.Equal(Sunscreen, plaintext);
    }

    [Fact]
    public void Counter_nonce_is_four_zero_bytes_then_little_endian_counter()
    {
        // Same key and plaintext as RFC 8439 2.8.2; the counter 0x4746454443424140 gives nonce 00000000 4041424344454647.
        using var key = Aead.ImportKey(Aead.ChaCha, Range(0x80, 32));
        var viaCounter = new byte[Sunscreen.Length + 16];
        var viaNonce = new byte[Sunscreen.Length + 16];
        Aead.Seal(key, 0x4746454443424140UL, Sunscreen, "ad"u8, viaCounter);
        Aead.ChaCha.Encrypt(key, Hex("000000004041424344454647"), "ad"u8, Sunscreen, viaNonce);
        Assert.Equal(viaNonce, viaCounter);

        var plaintext = new byte[Sunscreen.Length];
        Assert.True(Aead.Open(key, 0x4746454443424140UL, viaCounter, "ad"u8, plaintext));
        Assert.False(Aead.Open(key, 0x4746454443424141UL, viaCounter, "ad"u8, plaintext));
        viaCounter[5] ^= 1;
        Assert.False(Aead.Open(key, 0x4746454443424140UL, viaCounter, "ad"u8, plaintext));
    }

    [Fact]
    public void Seal_in_place_gives_the_same_ciphertext()
    {
        using var key = Aead.ImportKey(Aead.ChaCha, Range(0x80, 32));
        var expected = new byte[Sunscreen.Length + 16];
        Aead.Seal(key, 7, Sunscreen, [], expected);
        var buffer = new byte[Sunscreen.Length + 16];
        Sunscreen.CopyTo(buffer, 0);
        Aead.Seal(key, 7, buffer.AsSpan(0, Sunscreen.Length), [], buffer);
        Assert.Equal(expected, buffer);
    }

    [Fact]
    public void XChaCha20Poly1305_matches_draft_irtf_cfrg_xchacha_A_3_1()
    {
        var expected = Hex(
            "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39" +
            "ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9" +
            "21f9664c97637da9768812f615c68b13b52e" + "c0875924c1c7987947deafd8780acf49");
        var key = Range(0x80, 32);
        var nonce = Hex("404142434445464748494a4b4c4d4e4f5051525354555657");
        var ad = Hex("50515253c0c1c2c3c4c5c6c7");
        var ciphertext = new byte[Sunscreen.Length + 16];
        Aead.XSeal(key, nonce, Sunscreen, ad, ciphertext);
        Assert.Equal(expected, ciphertext);

        var plaintext = new byte[Sunscreen.Length];
        Assert.True(Aead.XOpen(key, nonce, ciphertext, ad, plaintext));
        Assert.Equal(Sunscreen, plaintext);
        Assert.False(Aead.XOpen(key, nonce, ciphertext, "other"u8, plaintext));
    }
}

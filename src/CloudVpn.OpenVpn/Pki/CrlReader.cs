using System.Formats.Asn1;
using System.Numerics;

namespace CloudVpn.OpenVpn.Pki;

/// <summary>What a CRL says: issuer, dates, CRL number and revoked serial numbers (hex, upper case).</summary>
/// <param name="Issuer">Issuer distinguished name.</param>
/// <param name="ThisUpdate">When the CRL was signed.</param>
/// <param name="NextUpdate">When a newer CRL is due (OpenVPN rejects clients after it).</param>
/// <param name="CrlNumber">The CRL number extension, if present.</param>
/// <param name="RevokedSerialNumbers">Serial numbers of revoked certificates, hex as <c>X509Certificate2.SerialNumber</c> prints them.</param>
/// <param name="TbsCertList">The signed part, for signature checks.</param>
/// <param name="SignatureAlgorithmOid">The signature algorithm.</param>
/// <param name="Signature">The signature bits.</param>
public sealed record CrlContents(
    string Issuer,
    DateTimeOffset ThisUpdate,
    DateTimeOffset? NextUpdate,
    BigInteger? CrlNumber,
    IReadOnlyList<string> RevokedSerialNumbers,
    ReadOnlyMemory<byte> TbsCertList,
    string SignatureAlgorithmOid,
    ReadOnlyMemory<byte> Signature);

/// <summary>A small reader for DER CRLs (RFC 5280 section 5), which .NET can build but not read back.</summary>
public static class CrlReader
{
    private const string CrlNumberOid = "2.5.29.20";

    /// <summary>Parses a DER CRL. Throws <see cref="AsnContentException"/> when it is not one.</summary>
    public static CrlContents Read(ReadOnlySpan<byte> der)
    {
        var bytes = der.ToArray();
        var outer = new AsnReader(bytes, AsnEncodingRules.DER).ReadSequence();
        var tbsEncoded = outer.PeekEncodedValue();
        var tbs = outer.ReadSequence();
        var algorithm = outer.ReadSequence().ReadObjectIdentifier();
        var signature = outer.ReadBitString(out _);

        if (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Integer))
        {
            _ = tbs.ReadInteger();
        }

        _ = tbs.ReadSequence();
        var issuer = new System.Security.Cryptography.X509Certificates.X500DistinguishedName(tbs.ReadEncodedValue().ToArray()).Name;
        var thisUpdate = ReadTime(tbs);
        DateTimeOffset? nextUpdate = null;
        if (tbs.HasData && (tbs.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) || tbs.PeekTag().HasSameClassAndValue(Asn1Tag.GeneralizedTime)))
        {
            nextUpdate = ReadTime(tbs);
        }

        var revoked = new List<string>();
        if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(Asn1Tag.Sequence))
        {
            var entries = tbs.ReadSequence();
            while (entries.HasData)
            {
                var entry = entries.ReadSequence();
                var serial = entry.ReadIntegerBytes().ToArray();
                revoked.Add(Convert.ToHexString(serial));
            }
        }

        BigInteger? crlNumber = null;
        var extensionsTag = new Asn1Tag(TagClass.ContextSpecific, 0, isConstructed: true);
        if (tbs.HasData && tbs.PeekTag().HasSameClassAndValue(extensionsTag))
        {
            var extensions = tbs.ReadSequence(extensionsTag).ReadSequence();
            while (extensions.HasData)
            {
                var extension = extensions.ReadSequence();
                var oid = extension.ReadObjectIdentifier();
                if (extension.PeekTag().HasSameClassAndValue(Asn1Tag.Boolean))
                {
                    _ = extension.ReadBoolean();
                }

                var value = extension.ReadOctetString();
                if (oid == CrlNumberOid)
                {
                    crlNumber = new AsnReader(value, AsnEncodingRules.DER).ReadInteger();
                }
            }
        }

        return new CrlContents(issuer, thisUpdate, nextUpdate, crlNumber, revoked, tbsEncoded.ToArray(), algorithm, signature);
    }

    private static DateTimeOffset ReadTime(AsnReader reader) =>
        reader.PeekTag().HasSameClassAndValue(Asn1Tag.UtcTime) ? reader.ReadUtcTime() : reader.ReadGeneralizedTime();
}

using System.Globalization;
using System.Net;

namespace CloudVpn.OpenVpn.Management;

/// <summary>One connected client as the management interface reports it.</summary>
/// <param name="CommonName">Client certificate common name.</param>
/// <param name="RealAddress">Underlay address and port the client connects from.</param>
/// <param name="VirtualAddress">Tunnel address.</param>
/// <param name="BytesReceived">Bytes received from the client (server's view).</param>
/// <param name="BytesSent">Bytes sent to the client.</param>
/// <param name="ConnectedSince">When the session was established.</param>
/// <param name="ClientId">OpenVPN's client id.</param>
/// <param name="Cipher">Data-channel cipher negotiated, when reported.</param>
public sealed record OpenVpnClientStatus(
    string CommonName,
    string? RealAddress,
    IPAddress? VirtualAddress,
    long BytesReceived,
    long BytesSent,
    DateTimeOffset? ConnectedSince,
    long? ClientId,
    string? Cipher);

/// <summary>Reads the tab-separated <c>status 3</c> answer, finding columns by their HEADER names (stable across 2.5/2.6).</summary>
public static class OpenVpnStatusParser
{
    /// <summary>The CLIENT_LIST rows of a <c>status 3</c> answer. Throws <see cref="FormatException"/> naming a bad row.</summary>
    public static IReadOnlyList<OpenVpnClientStatus> ParseClients(IEnumerable<string> lines)
    {
        ArgumentNullException.ThrowIfNull(lines);
        Dictionary<string, int>? columns = null;
        var clients = new List<OpenVpnClientStatus>();
        foreach (var line in lines)
        {
            var fields = line.Split('\t');
            if (fields.Length > 2 && fields[0] == "HEADER" && fields[1] == "CLIENT_LIST")
            {
                columns = new Dictionary<string, int>(StringComparer.Ordinal);
                for (var i = 2; i < fields.Length; i++)
                {
                    columns[fields[i]] = i - 1;
                }

                continue;
            }

            if (fields[0] != "CLIENT_LIST")
            {
                continue;
            }

            if (columns is null)
            {
                throw new FormatException("status 3: a CLIENT_LIST row came before its HEADER row.");
            }

            string? Field(string name) => columns.TryGetValue(name, out var index) && index < fields.Length && fields[index].Length > 0 && fields[index] != "UNDEF" ? fields[index] : null;

            long Number(string name)
            {
                var text = Field(name);
                return text is null ? 0 : long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n)
                    ? n
                    : throw new FormatException($"status 3: column '{name}' of client '{Field("Common Name")}' is '{text}', not a number.");
            }

            var commonName = Field("Common Name") ?? throw new FormatException("status 3: a CLIENT_LIST row has no common name.");
            DateTimeOffset? since = Field("Connected Since (time_t)") is { } epoch && long.TryParse(epoch, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : null;
            IPAddress? virtualAddress = Field("Virtual Address") is { } va && IPAddress.TryParse(va, out var parsed) ? parsed : null;
            long? clientId = Field("Client ID") is { } id && long.TryParse(id, NumberStyles.None, CultureInfo.InvariantCulture, out var cid) ? cid : null;
            clients.Add(new OpenVpnClientStatus(
                commonName,
                Field("Real Address"),
                virtualAddress,
                Number("Bytes Received"),
                Number("Bytes Sent"),
                since,
                clientId,
                Field("Data Channel Cipher")));
        }

        return clients;
    }
}

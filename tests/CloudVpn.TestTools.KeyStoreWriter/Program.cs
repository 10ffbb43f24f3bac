// Test tool for the file key store's crash-safety and cross-process tests (not shipped).
//   loop <dir> <id> <size>      : writes self-checking values of <size> bytes forever (killed by the test)
//   increment <dir> <id> <n>    : n compare-and-swap increments of a counter value, retrying on conflict
using System.Buffers.Binary;
using System.Security.Cryptography;
using CloudVpn.KeyStores;

var mode = args[0];
var store = new FileKeyStore(new FileKeyStoreOptions { Directory = args[1], MaxVersions = 1000 });
var id = args[2];
var amount = int.Parse(args[3], System.Globalization.CultureInfo.InvariantCulture);

if (mode == "loop")
{
    var value = new byte[amount];
    Console.WriteLine("started");
    Console.Out.Flush();
    while (true)
    {
        // Payload: random bytes, then the first 32 bytes replaced by the SHA-256 of the rest.
        RandomNumberGenerator.Fill(value.AsSpan(32));
        SHA256.HashData(value.AsSpan(32), value.AsSpan(0, 32));
        await store.PutAsync(id, value);
    }
}

if (mode == "increment")
{
    var done = 0;
    var conflicts = 0;
    while (done < amount)
    {
        long expected = 0;
        long counter = 0;
        using (var current = await store.GetAsync(id))
        {
            if (current is not null)
            {
                expected = current.Version;
                counter = BinaryPrimitives.ReadInt64LittleEndian(current.Value);
            }
        }

        var next = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(next, counter + 1);
        try
        {
            await store.PutAsync(id, next, expected);
            done++;
        }
        catch (KeyStoreConflictException)
        {
            conflicts++;
        }
    }

    Console.WriteLine($"done conflicts={conflicts}");
    return 0;
}

return 2;

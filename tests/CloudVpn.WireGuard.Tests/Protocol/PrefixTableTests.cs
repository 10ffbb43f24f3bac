using CloudVpn.WireGuard.Protocol;

namespace CloudVpn.WireGuard.Tests.Protocol;

/// <summary>The flat per-length table behind cryptokey routing: dictionary semantics through growth, removal and shrinking.</summary>
public sealed class PrefixTableTests
{
    [Fact]
    public void Agrees_with_a_dictionary_through_random_inserts_moves_and_removals()
    {
        var table = new PrefixTable<string>();
        var model = new Dictionary<UInt128, string>();
        var owners = new[] { "a", "b", "c" };
        var random = new Random(10);
        for (var step = 0; step < 50_000; step++)
        {
            // a small key space so that keys come back after removal (tombstones revived) and the table grows and shrinks
            var key = (UInt128)(ulong)random.Next(step < 25_000 ? 4000 : 300) << (random.Next(2) * 64);
            var owner = owners[random.Next(owners.Length)];
            if (random.Next(3) == 0)
            {
                var removed = table.TryRemove(key, owner);
                Assert.Equal(model.TryGetValue(key, out var current) && current == owner, removed);
                if (removed)
                {
                    model.Remove(key);
                }
            }
            else
            {
                table.Set(key, owner);
                model[key] = owner;
            }
        }

        Assert.Equal(model.Count, table.Count);
        for (ulong k = 0; k < 4000; k++)
        {
            foreach (var key in new[] { (UInt128)k, (UInt128)k << 64 })
            {
                Assert.Equal(model.TryGetValue(key, out var expected), table.TryGetValue(key, out var found));
                Assert.Equal(expected, found);
            }
        }
    }

    [Fact]
    public async Task Readers_always_find_stable_keys_while_a_writer_grows_and_shrinks_the_table()
    {
        var table = new PrefixTable<string>();
        for (var k = 0; k < 64; k++)
        {
            table.Set((UInt128)k, "stable");
        }

        using var stop = new CancellationTokenSource();
        var misses = 0L;
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                for (var k = 0; k < 64; k++)
                {
                    if (!table.TryGetValue((UInt128)k, out var owner) || owner != "stable")
                    {
                        Interlocked.Increment(ref misses);
                    }
                }
            }
        })).ToArray();

        for (var round = 0; round < 20; round++)
        {
            for (var k = 1000; k < 6000; k++)
            {
                table.Set((UInt128)k, "churn");
            }

            for (var k = 1000; k < 6000; k++)
            {
                Assert.True(table.TryRemove((UInt128)k, "churn"));
            }
        }

        await stop.CancelAsync();
        await Task.WhenAll(readers);
        Assert.Equal(0, Interlocked.Read(ref misses));
        Assert.Equal(64, table.Count);
    }
}

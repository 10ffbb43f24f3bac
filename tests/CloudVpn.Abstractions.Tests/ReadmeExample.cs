using System.Security.Cryptography;
using CloudVpn.KeyStores;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CloudVpn.Abstractions.Tests;

/// <summary>The README's usage example, compiled and run; a test keeps the README's copy identical.</summary>
public sealed class ReadmeExample
{
    [Fact]
    public async Task Readme_example_runs_and_matches_the_readme()
    {
        var root = Path.Combine(Path.GetTempPath(), "cloudvpn-readme-" + Guid.NewGuid().ToString("N"));
        try
        {
            var version = await RunExampleAsync(root);
            Assert.Equal(1, version);
        }
        finally
        {
            if (Directory.Exists(root))
            {
                Directory.Delete(root, recursive: true);
            }
        }

        var readme = await File.ReadAllTextAsync(FindReadme());
        var block = readme.Split("<!-- example:")[1].Split("```csharp\n")[1].Split("```")[0];
        var source = await File.ReadAllTextAsync(Path.Combine(Path.GetDirectoryName(FindReadme())!, "tests/CloudVpn.Abstractions.Tests/ReadmeExample.cs"));
        var region = source.Split("// region readme\n")[1].Split("        // endregion")[0];
        // the test passes its own folder where the README names the usual one; otherwise the texts are the same
        Assert.Equal(Normalize(block), Normalize(region.Replace("keyFolder", "\"/var/lib/cloudvpn/keys\"", StringComparison.Ordinal)));
    }

    private static async Task<long> RunExampleAsync(string keyFolder)
    {
        var privateKeyBytes = RandomNumberGenerator.GetBytes(32);
        // region readme
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddCloudVpn(o => o.Driver = "wireguard")        // a family: the best available WireGuard driver
                .AddFileKeyStore(keyFolder);       // the embedded key store: 0700 folder, atomic 0600 files

        using var provider = services.BuildServiceProvider();
        provider.GetRequiredService<IStartupValidator>().Validate(); // every configuration error at once
        var keys = provider.GetRequiredService<IKeyStore>();
        var version = await keys.PutAsync("gateway/private-key", privateKeyBytes, expectedVersion: 0);
        // endregion
        return version;
    }

    private static string Normalize(string text) => string.Join(' ', text.Split((char[])[' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries));

    private static string FindReadme()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "CloudVpn.sln")))
        {
            dir = dir.Parent;
        }

        return Path.Combine(dir?.FullName ?? throw new InvalidOperationException("repository root not found"), "README.md");
    }
}

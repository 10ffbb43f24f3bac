using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace CloudVpn.KeyStores;

/// <summary>Registers the embedded <see cref="FileKeyStore"/>.</summary>
public static class FileKeyStoreBuilderExtensions
{
    /// <summary>
    /// Adds a file key store named <paramref name="name"/> over <paramref name="directory"/>. Its settings are the named
    /// options <c>FileKeyStoreOptions</c> "<paramref name="name"/>", validated at host start.
    /// </summary>
    public static ICloudVpnBuilder AddFileKeyStore(
        this ICloudVpnBuilder builder,
        string directory,
        string name = "file",
        bool isDefault = false,
        Action<FileKeyStoreOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.EnsureCloudVpn(nameof(AddFileKeyStore));
        builder.Services.AddOptions<FileKeyStoreOptions>(name)
            .Configure(o =>
            {
                o.Directory = directory;
                configure?.Invoke(o);
            })
            .ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<FileKeyStoreOptions>, FileKeyStoreOptionsValidator>());
        return builder.AddKeyStore(
            name,
            sp => new FileKeyStore(
                sp.GetRequiredService<IOptionsMonitor<FileKeyStoreOptions>>().Get(name),
                sp.GetService<TimeProvider>(),
                sp.GetService<ILogger<FileKeyStore>>()),
            isDefault);
    }
}

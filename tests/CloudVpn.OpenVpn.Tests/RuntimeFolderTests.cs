using CloudVpn.OpenVpn.Supervision;

namespace CloudVpn.OpenVpn.Tests;

public sealed class RuntimeFolderTests : IDisposable
{
    private readonly string _parent = Path.Combine(Path.GetTempPath(), "cloudvpn-ovpn-rf-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_parent))
        {
            Directory.Delete(_parent, recursive: true);
        }
    }

    [Fact]
    public void Folder_is_0700_files_are_0600_written_only_when_changed_and_everything_goes_on_dispose()
    {
        const UnixFileMode Rwx = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        var folder = RuntimeFolder.Create(_parent, "ovpn0");
        Assert.StartsWith(Path.Combine(_parent, "ovpn0-"), folder.Path, StringComparison.Ordinal);
        Assert.Equal(Rwx, File.GetUnixFileMode(folder.Path));
        Assert.Equal(Rwx, File.GetUnixFileMode(folder.CreateSubfolder("ccd")));

        var key = Path.Combine(folder.Path, "server.key");
        Assert.True(RuntimeFolder.WriteAtomic(key, "one"u8));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        Assert.False(RuntimeFolder.WriteAtomic(key, "one"u8));
        Assert.True(RuntimeFolder.WriteAtomic(key, "two!"u8));
        Assert.Equal("two!", File.ReadAllText(key));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(key));
        Assert.Equal(["server.key"], Directory.GetFiles(folder.Path).Select(Path.GetFileName)); // no temporary files left

        var second = RuntimeFolder.Create(_parent, "ovpn0");
        Assert.NotEqual(folder.Path, second.Path);
        folder.Dispose();
        folder.Dispose();
        Assert.False(Directory.Exists(folder.Path));
        Assert.True(Directory.Exists(second.Path));
        second.Dispose();
    }
}

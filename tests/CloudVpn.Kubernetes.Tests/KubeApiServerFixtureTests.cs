using CloudVpn.Testing;
using k8s;
using k8s.Autorest;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests;

/// <summary>The real API server the Kubernetes tests use: it starts, stores objects, and enforces RBAC.</summary>
[Trait("Category", "Integration")]
public sealed class KubeApiServerFixtureTests
{
    [Fact]
    public async Task Admin_creates_objects_and_a_user_without_a_role_is_forbidden_until_bound()
    {
        var server = await KubeApiServer.GetAsync();
        var ns = await server.CreateNamespaceAsync("fixture");
        using var admin = server.AdminClient();
        var created = await admin.CoreV1.CreateNamespacedConfigMapAsync(
            new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "probe" }, Data = new Dictionary<string, string> { ["a"] = "1" } },
            ns, cancellationToken: TestContext.Current.CancellationToken);
        Assert.False(string.IsNullOrEmpty(created.Metadata.ResourceVersion));

        using var alice = server.UserClient("alice");
        var denied = await Assert.ThrowsAsync<HttpOperationException>(() =>
            alice.CoreV1.ReadNamespacedConfigMapAsync("probe", ns, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, denied.Response.StatusCode);

        await admin.RbacAuthorizationV1.CreateNamespacedRoleAsync(new V1Role
        {
            Metadata = new V1ObjectMeta { Name = "read-configmaps" },
            Rules = [new V1PolicyRule { ApiGroups = [""], Resources = ["configmaps"], Verbs = ["get"] }],
        }, ns, cancellationToken: TestContext.Current.CancellationToken);
        await admin.RbacAuthorizationV1.CreateNamespacedRoleBindingAsync(new V1RoleBinding
        {
            Metadata = new V1ObjectMeta { Name = "alice-reads" },
            RoleRef = new V1RoleRef { ApiGroup = "rbac.authorization.k8s.io", Kind = "Role", Name = "read-configmaps" },
            Subjects = [new Rbacv1Subject { Kind = "User", Name = "alice", ApiGroup = "rbac.authorization.k8s.io" }],
        }, ns, cancellationToken: TestContext.Current.CancellationToken);

        // RBAC changes propagate through the authorizer's informer: wait for the grant to take effect.
        var read = await Eventually.ReturnsAsync(async () =>
        {
            try
            {
                return await alice.CoreV1.ReadNamespacedConfigMapAsync("probe", ns, cancellationToken: TestContext.Current.CancellationToken);
            }
            catch (HttpOperationException e) when (e.Response.StatusCode == System.Net.HttpStatusCode.Forbidden)
            {
                return null;
            }
        }, "alice's RoleBinding to take effect");

        Assert.NotNull(read);
        Assert.Equal("1", read.Data["a"]);
        var writeDenied = await Assert.ThrowsAsync<HttpOperationException>(() =>
            alice.CoreV1.DeleteNamespacedConfigMapAsync("probe", ns, cancellationToken: TestContext.Current.CancellationToken));
        Assert.Equal(System.Net.HttpStatusCode.Forbidden, writeDenied.Response.StatusCode);
    }
}

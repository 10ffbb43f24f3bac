using CloudVpn.Kubernetes.Injection;
using k8s;
using k8s.Models;

namespace CloudVpn.Kubernetes.Tests.Injection;

public sealed class SidecarInjectorTests
{
    private static readonly Version Kube120 = new(1, 20);
    private static readonly Version Kube131 = new(1, 31);

    private static SidecarInjector Injector(SidecarForm form = SidecarForm.Auto)
    {
        var options = new SidecarInjectionOptions { Image = "registry.example/cloudvpn-sidecar:1.0", Form = form };
        options.Routes.Add(System.Net.IPNetwork.Parse("10.50.0.0/16"));
        return new SidecarInjector(options);
    }

    [Fact]
    public void Plain_pod_on_a_current_server_gets_a_native_sidecar_first_among_init_containers()
    {
        var (pod, result) = Injector().Inject(PodShapes.Load(PodShapes.Plain), Kube131);

        Assert.Equal(InjectionDecision.Injected, result.Decision);
        Assert.Equal(SidecarForm.Native, result.Form);
        var sidecar = Assert.Single(pod.Spec.InitContainers);
        Assert.Equal(SidecarInjector.ContainerName, sidecar.Name);
        Assert.Equal("Always", sidecar.RestartPolicy);
        Assert.Equal("app", Assert.Single(pod.Spec.Containers).Name);
        Assert.NotNull(sidecar.StartupProbe?.HttpGet);
        Assert.Equal("/readyz", sidecar.StartupProbe.HttpGet.Path);
        Assert.Null(sidecar.Lifecycle);
        Assert.Equal("native", pod.Metadata.Annotations[InjectionAnnotations.Status]);
        Assert.Contains("--gateway", sidecar.Args);
        Assert.Equal("vpn-gateway", sidecar.Args[sidecar.Args.IndexOf("--gateway") + 1]);
    }

    [Fact]
    public void On_kubernetes_1_20_the_sidecar_is_a_plain_first_container_holding_the_app_until_the_tunnel_is_up()
    {
        var (pod, result) = Injector().Inject(PodShapes.Load(PodShapes.Plain), Kube120);

        Assert.Equal(SidecarForm.Container, result.Form);
        Assert.Null(pod.Spec.InitContainers);
        Assert.Equal([SidecarInjector.ContainerName, "app"], pod.Spec.Containers.Select(c => c.Name));
        var sidecar = pod.Spec.Containers[0];
        Assert.Null(sidecar.RestartPolicy);
        Assert.Contains("--wait-ready", sidecar.Lifecycle.PostStart.Exec.Command);
        Assert.Equal("container", pod.Metadata.Annotations[InjectionAnnotations.Status]);
    }

    [Theory]
    [InlineData(SidecarForm.Native)]
    [InlineData(SidecarForm.Container)]
    public void Sidecar_is_least_privilege_with_only_net_admin_and_the_secret_read_only(SidecarForm form)
    {
        var (pod, _) = Injector(form).Inject(PodShapes.Load(PodShapes.Plain), Kube131);
        var sidecar = pod.Spec.Containers.Concat(pod.Spec.InitContainers ?? []).Single(c => c.Name == SidecarInjector.ContainerName);
        var sc = sidecar.SecurityContext;

        Assert.True(sc.RunAsNonRoot);
        Assert.True(sc.RunAsUser > 0);
        Assert.True(sc.ReadOnlyRootFilesystem);
        Assert.False(sc.AllowPrivilegeEscalation);
        Assert.False(sc.Privileged ?? false);
        Assert.Equal(["ALL"], sc.Capabilities.Drop);
        Assert.Equal(["NET_ADMIN"], sc.Capabilities.Add);
        Assert.Equal("RuntimeDefault", sc.SeccompProfile.Type);
        Assert.NotNull(sidecar.Resources.Requests["cpu"]);
        Assert.NotNull(sidecar.Resources.Limits["memory"]);
        var mount = sidecar.VolumeMounts.Single(m => m.Name == SidecarInjector.VolumeName);
        Assert.True(mount.ReadOnlyProperty);
        var state = sidecar.VolumeMounts.Single(m => m.Name == SidecarInjector.StateVolumeName);
        Assert.Equal("Memory", pod.Spec.Volumes.Single(v => v.Name == state.Name).EmptyDir.Medium);
        var volume = pod.Spec.Volumes.Single(v => v.Name == mount.Name);
        Assert.Equal("vpn-gateway-client", volume.Secret.SecretName);
        // no other container sees the secret, and the pod's own containers are untouched
        Assert.All(pod.Spec.Containers.Where(c => c.Name != SidecarInjector.ContainerName), c => Assert.Null(c.VolumeMounts));
    }

    [Fact]
    public void Existing_init_containers_sidecars_volumes_security_context_and_mesh_annotations_are_kept()
    {
        var original = PodShapes.Load(PodShapes.WithInitContainersVolumesAndSecurity);
        var (pod, result) = Injector().Inject(original, Kube131);

        Assert.True(result.Changed);
        Assert.Equal([SidecarInjector.ContainerName, "migrate", "log-shipper"], pod.Spec.InitContainers.Select(c => c.Name));
        Assert.Equal(["app", "metrics"], pod.Spec.Containers.Select(c => c.Name));
        Assert.Equal(["data", SidecarInjector.VolumeName, SidecarInjector.StateVolumeName], pod.Spec.Volumes.Select(v => v.Name));
        Assert.Equal("edge-client-busy", pod.Spec.Volumes[1].Secret.SecretName);
        Assert.Equal(2000, pod.Spec.SecurityContext.FsGroup);
        var a = pod.Metadata.Annotations;
        Assert.Equal("169.254.169.254/32,10.20.0.0/16,172.16.5.0/24", a[InjectionAnnotations.IstioExcludeOutboundIpRanges]);
        Assert.Equal("10.20.0.0/16,172.16.5.0/24", a[InjectionAnnotations.LinkerdSkipSubnets]);
        Assert.Equal("25,51820", a[InjectionAnnotations.LinkerdSkipOutboundPorts]);
        Assert.Equal("51820", a[InjectionAnnotations.IstioExcludeOutboundPorts]);
        // the input object is not modified
        Assert.Equal(2, original.Spec.InitContainers.Count);
        Assert.False(original.Metadata.Annotations.ContainsKey(InjectionAnnotations.Status));
    }

    [Fact]
    public void Default_routes_feed_the_mesh_bypass_when_the_pod_names_none()
    {
        var (pod, _) = Injector().Inject(PodShapes.Load(PodShapes.Plain), Kube131);
        Assert.Equal("10.50.0.0/16", pod.Metadata.Annotations[InjectionAnnotations.IstioExcludeOutboundIpRanges]);
        Assert.Equal("10.50.0.0/16", pod.Metadata.Annotations[InjectionAnnotations.LinkerdSkipSubnets]);
    }

    [Theory]
    [InlineData(SidecarForm.Native)]
    [InlineData(SidecarForm.Container)]
    public void Injecting_twice_changes_nothing(SidecarForm form)
    {
        var injector = Injector(form);
        var (once, first) = injector.Inject(PodShapes.Load(PodShapes.WithInitContainersVolumesAndSecurity), Kube131);
        var (twice, second) = injector.Inject(once, Kube131);

        Assert.True(first.Changed);
        Assert.Equal(InjectionDecision.AlreadyInjected, second.Decision);
        Assert.Equal(KubernetesJson.Serialize(once), KubernetesJson.Serialize(twice));
    }

    [Theory]
    [InlineData(PodShapes.OptedOut)]
    [InlineData(PodShapes.NoAnnotations)]
    public void Pods_that_do_not_opt_in_are_returned_unchanged(string yaml)
    {
        var original = PodShapes.Load(yaml);
        var before = KubernetesJson.Serialize(original);
        var (pod, result) = Injector().Inject(original, Kube131);

        Assert.Equal(InjectionDecision.NotOptedIn, result.Decision);
        Assert.Equal(before, KubernetesJson.Serialize(pod));
    }

    [Fact]
    public void Opted_in_pod_without_a_gateway_is_refused_naming_the_annotation()
    {
        var e = Assert.Throws<InjectionException>(() => Injector().Inject(PodShapes.Load(PodShapes.MissingGateway), Kube131));
        Assert.Contains(InjectionAnnotations.Gateway, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_route_annotation_is_refused_naming_the_value()
    {
        var pod = PodShapes.Load(PodShapes.Plain);
        pod.Metadata.Annotations[InjectionAnnotations.Routes] = "10.0.0.0/8,not-a-cidr";
        var e = Assert.Throws<InjectionException>(() => Injector().Inject(pod, Kube131));
        Assert.Contains("not-a-cidr", e.Message, StringComparison.Ordinal);
        Assert.Contains(InjectionAnnotations.Routes, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Deployment_template_is_injected_in_place()
    {
        var deployment = KubernetesYaml.Deserialize<V1Deployment>("""
            apiVersion: apps/v1
            kind: Deployment
            metadata: { name: web }
            spec:
              selector: { matchLabels: { app: web } }
              template:
                metadata:
                  labels: { app: web }
                  annotations: { cloudvpn.io/inject: "true", cloudvpn.io/gateway: gw }
                spec:
                  containers: [ { name: web, image: nginx } ]
            """, strict: true);

        var result = Injector().InjectTemplate(deployment.Spec.Template.Metadata, deployment.Spec.Template.Spec, Kube131);

        Assert.True(result.Changed);
        Assert.Equal(SidecarInjector.ContainerName, deployment.Spec.Template.Spec.InitContainers[0].Name);
    }

    [Theory]
    [InlineData("1", "20", 1, 20)]
    [InlineData("1", "29+", 1, 29)]
    public void Server_versions_parse_including_provider_suffixes(string major, string minor, int expectedMajor, int expectedMinor)
    {
        var v = SidecarInjector.ParseServerVersion(major, minor);
        Assert.Equal(new Version(expectedMajor, expectedMinor), v);
        Assert.Equal(v >= new Version(1, 29), SidecarInjector.SupportsNativeSidecars(v));
    }

    [Fact]
    public void Bad_options_name_every_field()
    {
        var e = Assert.Throws<ArgumentException>(() => new SidecarInjector(new SidecarInjectionOptions { Image = "", HealthPort = 0, RunAsUser = 0, ImagePullPolicy = "Sometimes" }));
        Assert.Contains("Image", e.Message, StringComparison.Ordinal);
        Assert.Contains("HealthPort", e.Message, StringComparison.Ordinal);
        Assert.Contains("RunAsUser", e.Message, StringComparison.Ordinal);
        Assert.Contains("Sometimes", e.Message, StringComparison.Ordinal);
    }
}

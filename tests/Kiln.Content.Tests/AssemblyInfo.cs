// Kiln runs its stages in Linux containers; these tests use Unix file modes and statx.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]

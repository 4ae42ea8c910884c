"""A bootable guestagent image and a qemu VM to boot it (tests/e2e/test_vm_boot.py).

- ``image``: debootstrap tree + kernel + the diskimage element, root filesystem by
  ``mkfs.ext4 -d`` (no loop device);
- ``configdrive``: the ISO 9660 ``config-2`` drive Nova would attach;
- ``netns``: the VM's own network namespace and the relay to the lab's ports;
- ``qemu``: the VM itself (KVM when it works, else TCG), serial files and QMP.
"""

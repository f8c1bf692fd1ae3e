#!/bin/sh
# Builds testdata/sysfs: a sysfs/udev fixture with one disk per bus type qemu-ga knows.
# Run from testdata/sysfs (it is committed; this script documents how it was made).
set -e
P=sys/devices/pci0000:00
drv() { mkdir -p sys/bus/pci/drivers/$2; ln -s ../../../../bus/pci/drivers/$2 $1/driver; }
# blk DIR NAME MAJ MIN SIZE
blk() { mkdir -p $1; printf 'MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=disk\n' $3 $4 $2 > $1/uevent; echo $3:$4 > $1/dev; echo $5 > $1/size;
        mkdir -p sys/dev/block sys/block; ln -s ../../${1#sys/} sys/dev/block/$3:$4; ln -s ../${1#sys/} sys/block/$2; }
part() { mkdir -p $1/$2; printf 'MAJOR=%s\nMINOR=%s\nDEVNAME=%s\nDEVTYPE=partition\n' $3 $4 $2 > $1/$2/uevent; echo $3:$4 > $1/$2/dev; echo 1 > $1/$2/partition;
        ln -s ../../${1#sys/}/$2 sys/dev/block/$3:$4; }
# virtio-blk with a partition and a serial
mkdir -p $P/0000:00:02.0; drv $P/0000:00:02.0 virtio-pci
blk $P/0000:00:02.0/virtio1/block/vda vda 254 0 2048
echo VIRTIO-SERIAL > $P/0000:00:02.0/virtio1/block/vda/serial
part $P/0000:00:02.0/virtio1/block/vda vda1 254 1
# virtio-scsi, SCSI id 3, LUN 2; udev database entry
mkdir -p $P/0000:00:03.0; drv $P/0000:00:03.0 virtio-pci
blk $P/0000:00:03.0/virtio2/host2/target2:0:3/2:0:3:2/block/sda sda 8 0 2048
mkdir -p run/udev/data; printf 'S:disk/by-id/x\nE:ID_SERIAL=0QEMU_QEMU_HARDDISK_drive-scsi0\nE:ID_BUS=scsi\n' > run/udev/data/b8:0
# AHCI, port 3 (ata3 of ata1..ata6)
mkdir -p $P/0000:00:1f.2; drv $P/0000:00:1f.2 ahci
for i in 1 2 3 4 5 6; do mkdir -p $P/0000:00:1f.2/ata$i; done
blk $P/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0/block/sdb sdb 8 16 2048
# IDE (ata_piix): secondary channel (ata8 of ata7, ata8), unit 1
mkdir -p $P/0000:00:01.1; drv $P/0000:00:01.1 ata_piix
mkdir -p $P/0000:00:01.1/ata7
blk $P/0000:00:01.1/ata8/host7/target7:0:1/7:0:1:0/block/sdc sdc 8 32 2048
# NVMe with a controller serial
mkdir -p $P/0000:00:04.0; drv $P/0000:00:04.0 nvme
mkdir -p $P/0000:00:04.0/nvme/nvme0; echo 'NVME-SERIAL   ' > $P/0000:00:04.0/nvme/nvme0/serial
blk $P/0000:00:04.0/nvme/nvme0/nvme0n1 nvme0n1 259 0 2048
ln -s ../../nvme0 $P/0000:00:04.0/nvme/nvme0/nvme0n1/device
# USB storage behind xhci
mkdir -p $P/0000:00:05.0; drv $P/0000:00:05.0 xhci_hcd
blk $P/0000:00:05.0/usb1/1-1/1-1:1.0/host9/target9:0:0/9:0:0:0/block/sdd sdd 8 48 2048
# virtio-blk behind a PCIe root port
mkdir -p $P/0000:00:1c.0/0000:01:00.0; drv $P/0000:00:1c.0 pcieport; drv $P/0000:00:1c.0/0000:01:00.0 virtio-pci
blk $P/0000:00:1c.0/0000:01:00.0/virtio3/block/vdb vdb 254 16 2048
# unknown controller
mkdir -p $P/0000:00:06.0; drv $P/0000:00:06.0 megaraid_sas
blk $P/0000:00:06.0/host0/target0:2:0/0:2:0:0/block/sde sde 8 64 2048
# device mapper over vda1 and sda; an empty loop device
blk sys/devices/virtual/block/dm-0 dm-0 253 0 4096
mkdir -p sys/devices/virtual/block/dm-0/dm sys/devices/virtual/block/dm-0/slaves; echo vg-root > sys/devices/virtual/block/dm-0/dm/name
ln -s ../../../../pci0000:00/0000:00:02.0/virtio1/block/vda/vda1 sys/devices/virtual/block/dm-0/slaves/vda1
ln -s ../../../../pci0000:00/0000:00:03.0/virtio2/host2/target2:0:3/2:0:3:2/block/sda sys/devices/virtual/block/dm-0/slaves/sda
blk sys/devices/virtual/block/loop0 loop0 7 0 0

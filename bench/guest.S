/*
 * guest.S - the boot sector of the benchmark VMs of bench/vmbench.py (no OS).
 * It fills guest RAM from 1 MiB to 240 MiB with xorshift32 output (so that
 * a memory snapshot has ~239 MiB of incompressible data to save, as a busy
 * guest would), in 32-bit protected mode, then goes back to real mode and
 * writes 4 KiB at a time through the BIOS (int 13h, AH=43h) to a 16 MiB
 * ring from 1 MiB into its boot disk (the boot sector stays intact),
 * asking the BIOS to wait 1 ms (int 15h, AH=86h) between writes, forever
 * (under TCG here: about 170 writes, 0.7 MB/s, 70% of a host core).  After
 * the fill it writes 'F' to port 0x402 (seen with an isa-debugcon device).
 * Under KVM on a host without hardware virtualization for real mode (PVM)
 * the BIOS and this code are emulated and the fill takes minutes.
 *
 * bench/vmbench.py carries the assembled 512 bytes (GUEST_HEX); after a
 * change, rebuild and paste the output of `xxd -p guest.bin`:
 *   as --32 -o guest.o guest.S
 *   ld -m elf_i386 -Ttext 0x7c00 --oformat binary -o guest.bin guest.o
 */
	.intel_syntax noprefix
	.code16
	.globl _start
_start:
	cli
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x7c00
	ljmp 0, offset go
go:
	mov [drive], dl
	in al, 0x92		/* fast A20 */
	or al, 2
	and al, 0xfe
	out 0x92, al
	lgdt [gdtr]
	mov eax, cr0
	or al, 1
	mov cr0, eax
	ljmp 0x08, offset pm32

	.code32
pm32:
	mov ax, 0x10
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov edi, 0x100000
	mov eax, 0x2545f491
fill:
	mov edx, eax
	shl edx, 13
	xor eax, edx
	mov edx, eax
	shr edx, 17
	xor eax, edx
	mov edx, eax
	shl edx, 5
	xor eax, edx
	mov [edi], eax
	add edi, 4
	cmp edi, 0x0f000000
	jb fill
	ljmp 0x18, offset pm16

	.code16
pm16:
	mov ax, 0x20
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov eax, cr0
	and al, 0xfe
	mov cr0, eax
	ljmp 0, offset rm
rm:
	xor ax, ax
	mov ds, ax
	mov es, ax
	mov ss, ax
	mov sp, 0x7c00
	sti
	mov dx, 0x402
	mov al, 'F'
	out dx, al
write:
	mov si, offset dap
	mov ah, 0x43
	xor al, al
	mov dl, [drive]
	int 0x13
	mov eax, [ctr]		/* next 4 KiB of the ring */
	add eax, 8
	and eax, 0x7fff
	mov [ctr], eax
	add eax, 2048
	mov [lba], eax
	inc dword ptr [0x8000]
	mov ah, 0x86		/* wait 1000 us */
	xor cx, cx
	mov dx, 1000
	int 0x15
	jmp write

	.p2align 3
gdt:	.quad 0
	.quad 0x00cf9a000000ffff	/* 0x08 code, 32-bit, flat */
	.quad 0x00cf92000000ffff	/* 0x10 data, 32-bit, flat */
	.quad 0x00009a000000ffff	/* 0x18 code, 16-bit, 64 KiB */
	.quad 0x000092000000ffff	/* 0x20 data, 16-bit, 64 KiB */
gdtr:	.word 39
	.long gdt
dap:	.byte 16, 0
	.word 8			/* sectors */
	.word 0x8000, 0		/* buffer 0000:8000 */
lba:	.long 2048
	.long 0
ctr:	.long 0
drive:	.byte 0x80
	.org 510
	.byte 0x55, 0xaa
